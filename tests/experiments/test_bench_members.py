"""experiments/bench_members.py: K members in one step beside K separate steps."""

import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import bench_members  # noqa: E402  pylint: disable=wrong-import-position

TINY = ["--feature_dim=64", "--hidden_dim=16", "--num_segments=32"]
LINE = re.compile(r"members=(\d+) together_ms_per_member=(\d+\.\d+) "
                  r"separate_ms_per_member=(\d+\.\d+) ratio=(\d+\.\d+)")


@pytest.mark.slow
def test_tiny_run_prints_the_sizes_and_one_line_per_k(capsys):
  assert bench_members.main(TINY + ["--members=2", "--steps=2", "--warmup=1"]) == 0
  header, *lines = capsys.readouterr().out.strip().splitlines()
  fields = dict(f.split("=") for f in header.split()[1:])
  assert header.startswith("bench_members ")
  assert (fields["feature_dim"], fields["hidden_dim"], fields["segments"],
          fields["batch"]) == ("64", "16", "32", "2")
  assert len(lines) == 1
  match = LINE.fullmatch(lines[0])
  assert match, lines[0]
  k, together, separate, ratio = match.groups()
  assert k == "2" and float(together) > 0 and float(separate) > 0
  assert float(ratio) == pytest.approx(float(together) / float(separate), rel=0.02)


def test_copies_of_one_member_are_new_buffers_with_their_own_batches():
  args = bench_members.parse_args(TINY + ["--members=3"])
  first, model, method = bench_members.first_member(args)
  three = bench_members.repeated(args, first, model, method, [0, 1, 2])
  assert three.batch["features"].shape == (3, 2, 32, 64)
  assert three.batch["features"][0].tolist() == first.batch["features"][0].tolist()
  assert three.batch["features"][1].tolist() != three.batch["features"][0].tolist()
  one = bench_members.repeated(args, first, model, method, [0], first.step_fn)
  kernel = one.state.params["fc"]["kernel"]
  assert kernel.shape == first.state.params["fc"]["kernel"].shape
  assert kernel.unsafe_buffer_pointer() != (
      first.state.params["fc"]["kernel"].unsafe_buffer_pointer())


@pytest.mark.parametrize("flag,message", [
    ("--members=1,x", "--members must be comma-separated integers"),
    ("--members=0", "--members must be positive"),
    ("--steps=0", "--steps must be at least 1"),
    ("--num_segments=4", "config.sal.num_segments = 4 is smaller than the largest top-k"),
])
def test_bad_flags_name_themselves_and_exit_2(flag, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    bench_members.main(TINY + [flag])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err
