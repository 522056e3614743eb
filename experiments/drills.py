r"""Drills: hostile and careless inputs, each replayed as the command that reads it.

    python experiments/drills.py [--only NAME]... [--list] [--keep DIR]

Each drill builds its inputs in a fresh folder (tiny files: a 250-byte torch
checkpoint, a W-TALC array of a few hundred bytes, a 200 kB JSON of nested
brackets, a data folder of three videos), runs one command on them as a
subprocess in that folder, and judges what came back. A drill is clean when its
command did what it must:
  - 'refused': exit 2, exactly one line on stderr naming the file at fault, no
    traceback, peak memory under MAX_RSS_MB, and no file created;
  - 'result': exit 0 (or the exit status the drill states, such as the validator's
    1 for a listed problem) and the output the drill checks for;
  - 'interrupted': SIGINT after `interrupt_after` seconds, then exit 130 with the
    drill's save message (for commands that save on Ctrl-C).
Prints one line per drill and a total:

    drill torch_zip_shared_lists: clean (exit 2, 1 lines, peak RSS 35 MB)
    drills: 16, clean 16

Exit status 0 when every drill is clean, 1 otherwise, 2 for bad flags. Peak RSS
is the child's own (os.wait4), so drills do not see each other's.

To add a drill, append a `Drill` to `DRILLS` (or call `add_drill`): `make(folder)`
writes its inputs under `folder` and returns a `Setup` (the command after
`python`, the file a refusal must name, a check of a result).
`tests/datasets/test_hostile_files.py` runs the 'refused' drills.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Callable, List, Optional, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

# pylint: disable=wrong-import-position
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import wtalc_layout
from salx.datasets.source import VideoRecord
# pylint: enable=wrong-import-position

MAX_RSS_MB = 600
TIMEOUT_S = 60
# The child may map this much address space: what the unbounded readers needed
# (4 GB and more) ends in a MemoryError instead of swapping the machine.
ADDRESS_SPACE_LIMIT = 6 << 30
CHECK = ["-m", "salx.datasets.check", "--dataset=thumos14"]


@dataclasses.dataclass
class Setup:
  """What a drill runs: `argv` after `python`; `names`, the file a refusal must
  name; `check(outcome)`, a message when a result is wrong (None when right)."""
  argv: List[str]
  names: Optional[str] = None
  check: Optional[Callable[["Outcome"], Optional[str]]] = None


@dataclasses.dataclass
class Drill:
  """One drill: `make(folder) -> Setup`; `expect` 'refused', 'result' or
  'interrupted'; `exit_code` the status of a right result."""
  name: str
  make: Callable[[str], Setup]
  expect: str = "refused"
  exit_code: int = 0
  interrupt_after: Optional[float] = None
  timeout: float = TIMEOUT_S


@dataclasses.dataclass
class Outcome:
  """What a drill's command did."""
  exit_code: int
  stdout: str
  stderr: str
  peak_rss_mb: float
  wall_s: float
  created: List[str]
  timed_out: bool = False

  @property
  def stderr_lines(self) -> List[str]:
    return self.stderr.strip().splitlines()


# ---------------------------------------------------------------------------
# Hostile files.


def shared_lists_pickle(levels: int = 10, fan: int = 10) -> bytes:
  """Protocol-2 opcodes of one list shared `fan` times at each of `levels` levels
  (memo i holds level i): ~25 bytes a level, fan**levels objects once copied."""
  ops = b"]q\x00"
  for level in range(1, levels + 1):
    ops += b"]q" + bytes([level]) + b"(" + (b"h" + bytes([level - 1])) * fan + b"e"
  return ops


def torch_zip_file(path: str, data_pkl: bytes) -> str:
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("archive/data.pkl", data_pkl)
    zf.writestr("archive/byteorder", b"little")
    zf.writestr("archive/version", b"3\n")
  return path


def torch_legacy_file(path: str, object_pickle: bytes) -> str:
  """Magic number, protocol, sys info, the object, an empty list of storage keys."""
  sys_info = {"protocol_version": 1001, "little_endian": True,
              "type_sizes": {"short": 2, "int": 4, "long": 4}}
  parts = [pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info)]
  with open(path, "wb") as f:
    f.write(b"".join(parts + [object_pickle, pickle.dumps([], protocol=2)]))
  return path


def npy_with_pickle(path: str, payload: bytes, shape=(1,)) -> str:
  """A .npy file whose header announces an object array of `shape`."""
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|O", "fortran_order": False, "shape": shape})
    f.write(payload)
  return path


def shared_lists_value(levels: int = 10, fan: int = 10) -> list:
  value: list = []
  for _ in range(levels):
    value = [value] * fan
  return value


def huge_shape_pickle() -> bytes:
  """numpy's _reconstruct(ndarray, (shared lists,), dtype): a shape whose repr is
  ~10^9 characters, from a file of ~300 bytes."""
  dtype = b"cnumpy\ndtype\n(X\x02\x00\x00\x00f4\x89\x88tR"
  return (b"\x80\x02" + shared_lists_pickle(8) + b"0"
          + b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(h\x08t"
          + dtype + b"tR.")


def deep_json(levels: int = 100_000, key: str = "database") -> str:
  return '{"%s": %s%s}' % (key, "[" * levels, "]" * levels)


# ---------------------------------------------------------------------------
# Data folders.

CLASSES = ("Jump", "Run")
SPLITS = {"train": ["v_a", "v_b"], "test": ["v_c"]}


def _records() -> List[VideoRecord]:
  rng = np.random.default_rng(0)
  out = []
  for name, length, labels in (("v_a", 12, ["Jump"]), ("v_b", 9, ["Run"]),
                               ("v_c", 15, ["Jump"])):
    multi_hot = np.array([c in labels for c in CLASSES], np.float32)
    out.append(VideoRecord(name=name, features=rng.standard_normal(
        (length, 2048)).astype(np.float32), labels=multi_hot,
                           segments=np.array([[0.5, 2.0]]), segment_labels=tuple(labels),
                           duration=length * 0.64))
  return out


def data_folder(folder: str, layout: str = "sal") -> str:
  """A clean three-video THUMOS14 folder in `layout` at `folder`/data."""
  return layouts.write_layout(layout, os.path.join(folder, "data"), _records(), SPLITS,
                              CLASSES)


def _reader_command(call: str, error: str) -> List[str]:
  """python -c running `call`, mapping `error` to one line and exit 2 as the
  commands do (`salx.cli.command_error`)."""
  return ["-c", "import sys\nfrom salx import cli\n"
          f"try:\n  {call}\nexcept {error} as e:\n"
          "  sys.exit(cli.command_error('reader', e))"]


def _torch_reader(path: str) -> List[str]:
  return _reader_command(
      f"from salx.core import torch_format\n  torch_format.read_torch_file({path!r})",
      "torch_format.CheckpointFormatError")


def _evaluate(ground_truth: str, predictions: str) -> List[str]:
  return ["-m", "salx.evaluate", f"--ground_truth={ground_truth}",
          f"--predictions={predictions}"]


def _gt_and_predictions(folder: str):
  gt = {"database": {"v_c": {"subset": "test", "annotations": [
      {"label": "Jump", "segment": [0.5, 2.0]}]}}}
  predictions = {"results": {"v_c": [{"label": "Jump", "score": 0.9,
                                      "segment": [0.5, 2.0]}]}}
  paths = []
  for name, content in (("gt.json", gt), ("predictions.json", predictions)):
    paths.append(os.path.join(folder, name))
    with open(paths[-1], "w", encoding="utf-8") as f:
      json.dump(content, f)
  return paths


def _write(path: str, text: str) -> str:
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path


def _make_torch_zip(folder):
  path = torch_zip_file(os.path.join(folder, "shared.pth"),
                        b"\x80\x02" + shared_lists_pickle() + b".")
  return Setup(_torch_reader(path), path)


def _make_torch_legacy(folder):
  path = torch_legacy_file(os.path.join(folder, "shared_legacy.pth"),
                           b"\x80\x02" + shared_lists_pickle() + b".")
  return Setup(_torch_reader(path), path)


def _make_torch_shared_dict(folder):
  # The same expansion in a state dict's values, the shape a real attack takes.
  body = (b"\x80\x02" + shared_lists_pickle() + b"0ccollections\nOrderedDict\n)R"
          + b"(X\x01\x00\x00\x00wh\x0au.")
  path = torch_zip_file(os.path.join(folder, "state_dict.pth"), body)
  return Setup(_torch_reader(path), path)


def _make_wtalc_videoname(folder):
  data = data_folder(folder, "wtalc")
  _, annotations = wtalc_layout.wtalc_paths(data, "thumos14")
  path = os.path.join(annotations, "videoname.npy")
  np.save(path, npy.object_array([shared_lists_value(), "v_b", "v_c"]),
          allow_pickle=True)
  return Setup(CHECK + [f"--data_dir={data}"], path)


def _make_npy_huge_shape(folder):
  data = data_folder(folder, "wtalc")
  _, annotations = wtalc_layout.wtalc_paths(data, "thumos14")
  path = npy_with_pickle(os.path.join(annotations, "labels.npy"), huge_shape_pickle(),
                         (3,))
  return Setup(CHECK + [f"--data_dir={data}"], path)


def _make_dotdot_name(folder):
  data = data_folder(folder)
  # features/train/rgb/../../../../outside -> the drill's folder, outside data/.
  np.save(os.path.join(folder, "outside.npy"), np.zeros((4, 1024), np.float32))
  split = _write(os.path.join(data, "split_train.txt"), "v_a\n../../../../outside\n")
  return Setup(CHECK + [f"--data_dir={data}"], split)


def _make_gt_json_dotdot(folder):
  data = data_folder(folder, "acmnet")
  path = os.path.join(data, "gt.json")
  with open(path, encoding="utf-8") as f:
    gt = json.load(f)
  gt["database"]["../v_a"] = gt["database"].pop("v_a")
  _write(path, json.dumps(gt))
  _write(os.path.join(data, "split_train.txt"), "../v_a\nv_b\n")
  return Setup(CHECK + [f"--data_dir={data}"], path)


def _make_empty_split(folder):
  data = data_folder(folder)
  split = _write(os.path.join(data, "split_test.txt"), "\n")
  return Setup(CHECK + [f"--data_dir={data}"], split)


def _make_data_dir_file(folder):
  path = _write(os.path.join(folder, "data"), "not a folder\n")

  def check(outcome):
    return None if "is not a directory" in outcome.stderr else "no 'is not a directory'"
  return Setup(CHECK + [f"--data_dir={path}"], path, check)


def _make_deep_gt_json(folder):
  data = data_folder(folder, "acmnet")
  path = _write(os.path.join(data, "gt.json"), deep_json())
  return Setup(CHECK + [f"--data_dir={data}"], path)


def _make_deep_ground_truth(folder):
  _, predictions = _gt_and_predictions(folder)
  deep = _write(os.path.join(folder, "deep_gt.json"), deep_json())
  return Setup(_evaluate(deep, predictions), deep)


def _make_deep_predictions(folder):
  gt, _ = _gt_and_predictions(folder)
  deep = _write(os.path.join(folder, "deep_predictions.json"), deep_json(key="results"))
  return Setup(_evaluate(gt, deep), deep)


def _problem_check(file_part: str, words: str):
  def check(outcome):
    lines = outcome.stdout.strip().splitlines()
    if not any(file_part in line and words in line for line in lines):
      return f"no problem line naming {file_part} with {words!r}"
    return None
  return check


def _make_complex_features(folder):
  data = data_folder(folder)
  path = os.path.join(data, "features", "test", "rgb", "v_c.npy")
  np.save(path, np.load(path).astype(np.complex64) * (1 + 1j))
  return Setup(CHECK + [f"--data_dir={data}"], path,
               _problem_check(path, "video v_c has complex-valued features"))


def _make_nan_features(folder):
  data = data_folder(folder)
  path = os.path.join(data, "features", "train", "flow", "v_b.npy")
  features = np.load(path)
  features[2, 3] = np.nan
  np.save(path, features)
  return Setup(CHECK + [f"--data_dir={data}"], path,
               _problem_check(path, "video v_b has 1 NaN and 0 infinite"))


def _make_clean_folder(folder):
  data = data_folder(folder)

  def check(outcome):
    return None if outcome.stdout.startswith("no problems in 2 train / 1 test") else (
        "no 'no problems' summary")
  return Setup(CHECK + [f"--data_dir={data}"], None, check)


def _make_clean_evaluate(folder):
  gt, predictions = _gt_and_predictions(folder)

  def check(outcome):
    return None if "mAP" in outcome.stdout else "no mAP table"
  return Setup(_evaluate(gt, predictions), None, check)


# ---------------------------------------------------------------------------
# Runs: python -m salx.main on configs/tiny.py (its synthetic data made first).

RUN_TIMEOUT_S = 900


def _tiny_data(folder: str) -> str:
  """The tiny synthetic dataset of configs/tiny.py at `folder`/data."""
  import configs.tiny  # pylint: disable=g-import-not-at-top
  from salx.app import data as data_lib  # pylint: disable=g-import-not-at-top
  config = configs.tiny.get_config()
  config.data_dir = os.path.join(folder, "data")
  data_lib.open_data(config)
  return config.data_dir


def _main(folder: str, data: str, *flags: str) -> List[str]:
  return ["-m", "salx.main", f"--config={ROOT}/configs/tiny.py",
          f"--workdir={os.path.join(folder, 'run')}", f"--config.data_dir={data}",
          *flags]


def _train_first(folder: str, data: str, *flags: str) -> None:
  """A finished (or checkpointed) tiny run in `folder`/run, before the drill."""
  subprocess.run([sys.executable, *_main(folder, data, *flags)], cwd=folder, check=True,
                 capture_output=True, env={**os.environ, "PYTHONPATH": ROOT})


def _make_seed_overflow(folder):
  data = _tiny_data(folder)
  return Setup(_main(folder, data, "--config.seed=99999999999999999999"), "config.seed")


def _make_batch_of_one(folder):
  data = _tiny_data(folder)
  return Setup(_main(folder, data, "--config.batch_size=1"), "config.batch_size")


def _make_foreign_init_checkpoint(folder):
  data = _tiny_data(folder)
  path = os.path.join(folder, "other_model.pth")
  from salx.core import torch_writer  # pylint: disable=g-import-not-at-top
  torch_writer.write_torch_file({"layer.weight": np.zeros((2, 2), np.float32)}, path)
  return Setup(_main(folder, data, f"--config.init_checkpoint={path}"), path)


def _make_huge_eval_batch(folder):
  data = _tiny_data(folder)

  def check(outcome):
    return None if "AVG(0.1:0.7)" in outcome.stdout else "no report table"
  return Setup(_main(folder, data, "--config.eval_batch_size=100000",
                     "--config.num_steps=2", "--config.eval_untrained=False"), None, check)


def _make_ctrl_c(folder):
  data = _tiny_data(folder)

  def check(outcome):
    lines = [l for l in outcome.stderr_lines if l.startswith("salx:")]
    return (None if len(lines) == 1 and "run the same command" in lines[0]
            else f"not one line saying how to resume: {lines}")
  return Setup(_main(folder, data, "--config.num_steps=1000000"), None, check)


def _make_torn_best(folder):
  data = _tiny_data(folder)
  _train_first(folder, data, "--config.num_steps=20")
  best = os.path.join(folder, "run", "best")
  step = next(n for n in os.listdir(best) if n.isdigit())
  metrics = os.path.join(best, step, "metrics", "metrics")
  with open(metrics, encoding="utf-8") as f:
    text = f.read()
  _write(metrics, text[:len(text) // 2])

  def check(outcome):
    return (None if "is damaged" in outcome.stderr and "AVG(0.1:0.7)" in outcome.stdout
            else "the torn folder is not named, or the run did not finish")
  return Setup(_main(folder, data), None, check)


def _make_same_command_resume(folder):
  data = _tiny_data(folder)
  _train_first(folder, data)

  def check(outcome):
    return None if "differs" not in outcome.stderr else "warned that the config differs"
  return Setup(_main(folder, data), None, check)


def _make_deep_metrics_visualize(folder):
  run = os.path.join(folder, "run")
  os.makedirs(run)
  path = _write(os.path.join(run, "metrics.json"), deep_json())
  return Setup(["-m", "salx.visualize", f"--workdir={run}"], path)


DRILLS: List[Drill] = [
    Drill("torch_zip_shared_lists", _make_torch_zip),
    Drill("torch_legacy_shared_lists", _make_torch_legacy),
    Drill("torch_state_dict_shared_lists", _make_torch_shared_dict),
    Drill("wtalc_videoname_huge_repr", _make_wtalc_videoname),
    Drill("npy_refusal_huge_shape", _make_npy_huge_shape),
    Drill("split_name_dotdot", _make_dotdot_name),
    Drill("gt_json_name_dotdot", _make_gt_json_dotdot),
    Drill("empty_split_file", _make_empty_split),
    Drill("data_dir_regular_file", _make_data_dir_file),
    Drill("deep_json_data_folder_gt", _make_deep_gt_json),
    Drill("deep_json_evaluate_ground_truth", _make_deep_ground_truth),
    Drill("deep_json_evaluate_predictions", _make_deep_predictions),
    Drill("complex_features_named", _make_complex_features, "result", exit_code=1),
    Drill("nan_features_named", _make_nan_features, "result", exit_code=1),
    Drill("clean_folder_checks", _make_clean_folder, "result"),
    Drill("clean_evaluation", _make_clean_evaluate, "result"),
    Drill("run_seed_overflow", _make_seed_overflow, timeout=RUN_TIMEOUT_S),
    Drill("run_batch_of_one", _make_batch_of_one, timeout=RUN_TIMEOUT_S),
    Drill("run_foreign_init_checkpoint", _make_foreign_init_checkpoint,
          timeout=RUN_TIMEOUT_S),
    Drill("run_huge_eval_batch", _make_huge_eval_batch, "result", timeout=RUN_TIMEOUT_S),
    Drill("run_ctrl_c", _make_ctrl_c, "interrupted", interrupt_after=45.0,
          timeout=RUN_TIMEOUT_S),
    Drill("run_torn_best_checkpoint", _make_torn_best, "result", timeout=RUN_TIMEOUT_S),
    Drill("run_same_command_resume_is_silent", _make_same_command_resume, "result",
          timeout=RUN_TIMEOUT_S),
    Drill("visualize_deep_metrics_json", _make_deep_metrics_visualize,
          timeout=RUN_TIMEOUT_S),
]


def add_drill(drill: Drill) -> None:
  """Adds a drill to the list `main` replays (names are unique)."""
  if any(d.name == drill.name for d in DRILLS):
    raise ValueError(f"drill {drill.name} already exists")
  DRILLS.append(drill)


# ---------------------------------------------------------------------------
# Running and judging.


def _files(folder: str) -> set:
  found = set()
  for parent, dirs, files in os.walk(folder):
    found.update(os.path.join(parent, n) for n in dirs + files)
  return found


# The command runs as the grandchild of this process: a small Python launcher forks
# it (so the peak RSS the launcher reads from wait4 is the command's own, not that
# of a large process that forked it: Linux counts the memory a process had before
# exec), sets the address-space limit, and reports that peak in a file. Ctrl-C is
# forwarded to the command; the launcher leaves with the command's exit status.
_LAUNCHER = """
import os, resource, signal, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
  resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
  os.execv(sys.executable, [sys.executable] + argv)
signal.signal(signal.SIGINT, lambda *_: os.kill(pid, signal.SIGINT))
while True:
  try:
    _, status, usage = os.wait4(pid, 0)
    break
  except InterruptedError:
    continue
with open(report, "w") as f:
  f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
""".format(limit=ADDRESS_SPACE_LIMIT)


def run_command(argv: Sequence[str], cwd: str, timeout: float = TIMEOUT_S,
                interrupt_after: Optional[float] = None) -> Outcome:
  """Runs `python argv` in `cwd`; its exit status, output and own peak RSS."""
  before = _files(cwd)
  env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1"}
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
       tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, report.name, *argv],
                            cwd=cwd, stdout=out, stderr=err, env=env,
                            start_new_session=True)
    timed_out, interrupted = False, False
    while proc.poll() is None:
      elapsed = time.monotonic() - start
      if interrupt_after is not None and not interrupted and elapsed > interrupt_after:
        proc.send_signal(signal.SIGINT)
        interrupted = True
      if elapsed > timeout:
        os.killpg(proc.pid, signal.SIGKILL)   # The launcher and the command.
        proc.wait()
        timed_out = True
        break
      time.sleep(0.02)
    wall = time.monotonic() - start
    peak_kb = report.read().strip()
    out.seek(0)
    err.seek(0)
    stdout, stderr = (f.read().decode("utf-8", "replace") for f in (out, err))
  created = sorted(_files(cwd) - before)
  return Outcome(proc.returncode, stdout, stderr, int(peak_kb or 0) / 1024, wall, created,
                 timed_out)


def judge(drill: Drill, setup: Setup, outcome: Outcome) -> List[str]:
  """What is wrong with `outcome` (empty when the drill is clean)."""
  wrong = []
  if outcome.timed_out:
    wrong.append(f"killed after {drill.timeout:g} s")
  if drill.expect == "refused":
    if outcome.exit_code != 2:
      wrong.append(f"exit {outcome.exit_code}, not 2")
    if len(outcome.stderr_lines) != 1:
      wrong.append(f"{len(outcome.stderr_lines)} lines on stderr, not 1")
    if setup.names and setup.names not in outcome.stderr:
      wrong.append(f"stderr does not name {setup.names}")
    if outcome.peak_rss_mb > MAX_RSS_MB:
      wrong.append(f"peak RSS {outcome.peak_rss_mb:.0f} MB > {MAX_RSS_MB} MB")
    if outcome.created:
      wrong.append(f"created {outcome.created[:3]}")
  elif drill.expect == "result":
    if outcome.exit_code != drill.exit_code:
      wrong.append(f"exit {outcome.exit_code}, not {drill.exit_code}")
  elif drill.expect == "interrupted":
    if outcome.exit_code != 130:
      wrong.append(f"exit {outcome.exit_code}, not 130")
  else:
    wrong.append(f"unknown expectation {drill.expect!r}")
  if "Traceback" in outcome.stderr:
    wrong.append("a traceback")
  if setup.check is not None:
    message = setup.check(outcome)
    if message:
      wrong.append(message)
  return wrong


def run_drill(drill: Drill, folder: str):
  """(setup, outcome, what is wrong) of `drill`, its inputs built in `folder`."""
  os.makedirs(folder, exist_ok=True)
  setup = drill.make(folder)
  outcome = run_command(setup.argv, folder, timeout=drill.timeout,
                        interrupt_after=drill.interrupt_after)
  return setup, outcome, judge(drill, setup, outcome)


def summary_line(drill: Drill, outcome: Outcome, wrong: Sequence[str]) -> str:
  lines = len(outcome.stderr_lines) + len(outcome.stdout.strip().splitlines())
  state = "clean" if not wrong else "FAILED"
  line = (f"drill {drill.name}: {state} (exit {outcome.exit_code}, {lines} lines, "
          f"peak RSS {outcome.peak_rss_mb:.0f} MB)")
  return line if not wrong else f"{line}: {'; '.join(wrong)}"


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", action="append", default=[], help="Run this drill only "
                      "(repeatable).")
  parser.add_argument("--list", action="store_true", help="List the drills and exit.")
  parser.add_argument("--keep", help="Build the drills' folders here and keep them.")
  args = parser.parse_args(argv)
  unknown = set(args.only) - {d.name for d in DRILLS}
  if unknown:
    print(f"drills: error: unknown drills {sorted(unknown)}", file=sys.stderr)
    return 2
  drills = [d for d in DRILLS if not args.only or d.name in args.only]
  if args.list:
    for drill in drills:
      print(f"{drill.name} ({drill.expect})")
    return 0
  base = args.keep or tempfile.mkdtemp(prefix="salx_drills_")
  clean = 0
  try:
    for drill in drills:
      _, outcome, wrong = run_drill(drill, os.path.join(base, drill.name))
      clean += not wrong
      print(summary_line(drill, outcome, wrong), flush=True)
  finally:
    if not args.keep:
      shutil.rmtree(base, ignore_errors=True)
  print(f"drills: {len(drills)}, clean {clean}")
  return 0 if clean == len(drills) else 1


if __name__ == "__main__":
  sys.exit(main())
