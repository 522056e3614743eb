"""What every salx command shares: absl flag parsing with salx's exit-code rule.

`run(main)` runs an absl `main(argv)`: `--help` (and `--helpshort`, `--helpfull`)
print the flags and exit 0; a bad flag or flag value prints one line naming it and
exits 2; `main`'s own exit status is passed through.
"""

from __future__ import annotations

import sys
from typing import Callable, List

from absl import app
from absl import flags

EXIT_BAD_INPUT = 2
_HELP = ("--help", "-?", "--helpshort", "--helpfull")


def fail(text: str, code: int = EXIT_BAD_INPUT) -> int:
  """Prints `salx: text` on stderr; returns `code` for sys.exit."""
  print(f"salx: {text}", file=sys.stderr, flush=True)
  return code


def _one_line(error: BaseException) -> str:
  return " ".join(str(error).split())


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
  except SystemExit as e:
    if asked_for_help and e.code == 1:
      sys.exit(0)
    raise
