"""What every salx command shares: absl flag parsing with salx's exit-code rule.

`run(main)` runs an absl `main(argv)` on the global flags (`python -m salx.main`,
`python -m salx.visualize`); `parse_command` parses a command's own private flags
(`salx.evaluate`, `salx.datasets.check`, `salx.datasets.synthetic`, which can be
called as functions). Either way `--help` (and `-h`, `--helpshort`, `--helpfull`)
prints the flags and exits 0, and a bad flag or flag value prints one line naming it
and exits 2.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from absl import app
from absl import flags

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
_HELP = ("--help", "-h", "-?", "--helpshort", "--helpfull")


# What each extra brings that a command needs (setup.cfg [options.extras_require]).
TRAIN_MODULES = ("ml_collections", "orbax.checkpoint", "clu", "tensorflow", "matplotlib")


def require_extra(command: str, extra: str, modules: Sequence[str]) -> None:
  """Exits 2 with one line naming the extra to install when a module is missing."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  missing = []
  for name in modules:
    try:
      found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):   # A missing parent package.
      found = False
    if not found:
      missing.append(name.split(".")[0])
  if missing:
    print(f"salx: python -m {command} needs salx's {extra!r} extra, which brings "
          f"{', '.join(dict.fromkeys(missing))}: pip install 'salx[{extra}]' (from a "
          f"clone: pip install -e '.[{extra}]')", file=sys.stderr, flush=True)
    sys.exit(EXIT_BAD_INPUT)


def fail(text: str, code: int = EXIT_BAD_INPUT) -> int:
  """Prints `salx: text` on stderr; returns `code` for sys.exit."""
  print(f"salx: {text}", file=sys.stderr, flush=True)
  return code


def _one_line(error: BaseException) -> str:
  return " ".join(str(error).split())


def command_error(prog: str, message, code: int = EXIT_BAD_INPUT) -> int:
  """Prints `<prog>: error: <message>` as one line on stderr; returns `code`."""
  print(f"{prog}: error: {_one_line(message)}", file=sys.stderr, flush=True)
  return code


def parse_command(prog: str, doc: str, define: Callable[[flags.FlagValues], None],
                  argv: Sequence[str]) -> Tuple[Optional[flags.FlagValues], int]:
  """A command's own flags, parsed from `argv` (without the program name).

  Args:
    prog: the command as typed ('python -m salx.evaluate'), for messages.
    doc: the command's docstring, printed above the flags by --help.
    define: defines the flags on the FlagValues it is given.

  Returns:
    (the flag values, 0), or (None, exit status) after --help (0) or after one
    line for a bad or stray argument (2).
  """
  argv = list(argv)
  values = flags.FlagValues()
  define(values)
  options = argv[:argv.index("--")] if "--" in argv else argv
  if any(a.split("=")[0] in _HELP for a in options):
    print((doc or "").strip() + "\n\nFlags:\n"
          + values.get_help(include_special_flags=False), flush=True)
    return None, 0
  try:
    rest = values([prog] + argv)[1:]
  except flags.Error as e:
    return None, command_error(prog, f"{_one_line(e)} (see --help)")
  if rest:
    return None, command_error(prog, f"unexpected arguments {rest}; every input is a "
                               "--flag")
  return values, 0


def parse_flags(argv: List[str]) -> List[str]:
  """absl's parsing; a bad flag or config override is one line and exit 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(fail(f"bad flag: {_one_line(e)} (see --help)"))
  except (AttributeError, KeyError) as e:   # An override of a field that does not exist.
    name = next((a.split("=")[0] for a in argv[1:] if _one_line(e).strip("'\"") in a),
                "a --config override")
    sys.exit(fail(f"bad flag: {name}: the config has no field {_one_line(e)} "
                  "(see the config file)"))
  except Exception as e:  # pylint: disable=broad-except
    # A config file that does not load: its syntax or its get_config() failed.
    sys.exit(fail(f"bad flag: {type(e).__name__}: {_one_line(e)}"))


def import_quietly(module: str) -> None:
  """Imports `module` with file descriptor 2 muted: TensorFlow's C++ start-up prints
  lines ("All log messages before absl::InitializeLog()...", oneDNN notes) that no
  setting silences. Python errors still raise; a missing module is ignored."""
  import importlib  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      try:
        importlib.import_module(module)
      except ImportError:
        pass
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def run(main: Callable[[List[str]], None]) -> None:
  """Runs an absl main with salx's flag handling (see the module docstring)."""
  asked_for_help = any(a.split("=")[0] in _HELP for a in sys.argv[1:])
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:   # Ctrl-C outside a run's own handling: one line, 130.
    fail("interrupted", EXIT_INTERRUPTED)
    os._exit(EXIT_INTERRUPTED)  # pylint: disable=protected-access
  except SystemExit as e:
    if asked_for_help and e.code == 1:
      sys.exit(0)
    raise
