"""salx.core.progress_bar: drawn on a terminal, silent elsewhere, with its numbers."""

import ast
import io
import pathlib
import sys

import pytest

from salx.core import progress_bar

SOURCE = pathlib.Path(progress_bar.__file__)


class FakeTerminal(io.StringIO):
  """A text stream that says it is a terminal."""

  def isatty(self):
    return True


class FakeClock:
  """A clock that moves only when told."""

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def _lines(stream):
  """What a terminal would show: each '\\n'-ended line's last '\\r' redraw."""
  return [line.split("\r")[-1].rstrip() for line in stream.getvalue().split("\n")]


def test_a_terminal_shows_total_count_rate_and_eta():
  stream, clock = FakeTerminal(), FakeClock()
  seen = []
  for item in progress_bar.track(range(10), label="drawing", unit="videos",
                                 stream=stream, clock=clock, min_interval=0):
    clock.now += 5.0 if item == 0 else 0.5   # A slow first item (a compile).
    seen.append(item)
    if item == 4:
      middle = stream.getvalue().split("\r")[-1]
  assert seen == list(range(10))
  # While item 4 runs, 4 are done: 3 at 2/s after the slow first, 6 left take 3 s.
  assert middle.startswith("drawing  [")
  assert "4/10" in middle and "40%" in middle
  assert "2.0 videos/s" in middle and "ETA 3s" in middle
  shown = _lines(stream)
  assert shown[-1] == ""   # The last line is ended.
  final = shown[-2]
  assert "10/10" in final and "100%" in final and "[" + "#" * 24 + "]" in final
  assert "in 9s" in final and "ETA" not in final   # 5 + 9 * 0.5 s


def test_a_stream_that_is_not_a_terminal_stays_silent():
  stream = io.StringIO()
  items = progress_bar.track(iter("abc"), label="x", stream=stream)
  assert list(items) == ["a", "b", "c"]
  with progress_bar.ProgressBar(total=3, stream=stream) as bar:
    bar.update(3)
  progress_bar.note("hello", stream)
  assert stream.getvalue() == ""
  assert not bar.enabled and bar.count == 3


def test_the_default_stream_is_stderr_and_quiet_under_pytest(capsys):
  bar = progress_bar.ProgressBar(total=2, label="x")
  assert bar.stream is sys.stderr
  bar.update(2)
  bar.close()
  assert capsys.readouterr().err == ""   # pytest's capture is not a terminal.


def test_forced_on_or_off():
  stream = io.StringIO()
  with progress_bar.ProgressBar(total=1, stream=stream, enabled=True) as bar:
    bar.update()
  assert "1/1" in stream.getvalue()
  terminal = FakeTerminal()
  with progress_bar.ProgressBar(total=1, stream=terminal, enabled=False) as bar:
    bar.update()
  assert terminal.getvalue() == ""


def test_an_unknown_total_counts_and_times():
  stream, clock = FakeTerminal(), FakeClock()
  with progress_bar.ProgressBar(label="reading", unit="files", stream=stream,
                                clock=clock, min_interval=0) as bar:
    for _ in range(3):
      clock.now += 1.0
      bar.update()
  final = _lines(stream)[-2]
  assert final.startswith("reading  3 files") and "1.0 files/s" in final
  assert "in 3s" in final and "%" not in final and "ETA" not in final


def test_redraws_are_throttled_but_the_end_is_drawn():
  stream, clock = FakeTerminal(), FakeClock()
  with progress_bar.ProgressBar(total=1000, stream=stream, clock=clock,
                                min_interval=1.0) as bar:
    for _ in range(1000):
      clock.now += 0.001
      bar.update()
  assert stream.getvalue().count("\r") <= 4
  assert "1000/1000" in _lines(stream)[-2]


def test_a_shorter_redraw_blanks_the_rest_of_the_line():
  stream = FakeTerminal()
  bar = progress_bar.ProgressBar(total=None, label="a long label " * 3, stream=stream,
                                 min_interval=0)
  bar.update()
  bar.label = "short"
  bar.update()
  previous, last = stream.getvalue().split("\r")[-2:]
  assert len(last) >= len(previous.rstrip())


def test_the_line_fits_the_width():
  bar = progress_bar.ProgressBar(total=5, label="x" * 200, enabled=False)
  assert len(bar.line(width=60)) == 60 and bar.line(width=60).endswith("...")


def test_an_exception_ends_the_line_and_propagates():
  stream = FakeTerminal()
  with pytest.raises(KeyError):
    for item in progress_bar.track([1, 2, 3], stream=stream):
      if item == 2:
        raise KeyError(item)
  assert stream.getvalue().endswith("\n") and "1/3" in _lines(stream)[-2]


def test_updates_after_close_are_refused_and_bad_totals_named():
  bar = progress_bar.ProgressBar(total=1, enabled=False)
  bar.close()
  bar.close()   # Once is enough; twice is harmless.
  with pytest.raises(ValueError, match="closed"):
    bar.update()
  for total in (-1, 1.5, True):
    with pytest.raises(ValueError, match="total"):
      progress_bar.ProgressBar(total=total)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.9, "59s"), (185, "3m05s"),
                                           (9960, "2h46m"), (float("nan"), "?"),
                                           (-1, "?"), (float("inf"), "?")])
def test_durations(seconds, text):
  assert progress_bar.format_duration(seconds) == text


def test_a_broken_stream_is_not_a_terminal():
  class Closed:
    def isatty(self):
      raise ValueError("I/O operation on closed file")
  assert not progress_bar.is_terminal(Closed())
  assert not progress_bar.is_terminal(object())


def test_standard_library_only():
  """Every tier uses it, so it imports neither JAX nor numpy nor salx."""
  for node in ast.walk(ast.parse(SOURCE.read_text())):
    names = ([a.name for a in node.names] if isinstance(node, ast.Import)
             else [node.module] if isinstance(node, ast.ImportFrom) else [])
    for name in names:
      top = (name or "").split(".")[0]
      assert top in sys.stdlib_module_names or top == "__future__", name
