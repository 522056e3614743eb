r"""SAL, CO2-Net and DELU as K members each on one THUMOS14-shaped workload.

    python experiments/compare_methods.py                       # the reduced default
    python experiments/compare_methods.py --num_seeds=4 --protocol=common
    python experiments/compare_methods.py --methods=co2net,delu --num_steps=600

One data folder serves the three methods: the synthetic generator
(`salx.datasets.synthetic`) copies THUMOS14's videos, their true durations and
their instances from the public annotations (`--annotations`, default
thumos14/gt.json under $SALX_DATA_DIR or shared/data beside a folder above the
repository, with video_info.csv beside it), with synthetic I3D-like features (the
demo's feature knobs, configs/synthetic.py). Each method then trains as K members
(`config.num_seeds`, seeds seed .. seed + K - 1) through
`salx.app.trainer.train_and_evaluate` with its own config (configs/thumos.py,
co2net_thumos.py, delu_thumos.py: its batch, optimizer, loss weights and inference)
at the reduced sizes below, the same steps, evaluation schedule, seed and
held-out training videos (`config.holdout_fraction`) for all three.

The default is REDUCED so that the whole run fits in 8 minutes on a quiet 2-core
CPU (16 under a load of 5; data generation, once, 2 s more): a class-stratified part of THUMOS14 (4 training
videos of each class by first label, 3 where a class has 3, 25% of them held out;
3 test videos of each class), videos cropped to 320 snippets, 256-d features,
width 64 (SAL's hidden width, CO2-Net/DELU's attention width), T = 128 for every
method, 300 steps (DELU's curriculum spans them), an evaluation every 50 steps
from step 50. The authors' sizes are `--train_per_class=0 --test_per_class=0
--max_snippets=0 --feature_dim=2048 --width=512 --num_segments=0` with 5,000 to
10,000 steps, far beyond a CPU. The learning rates are the authors'
(--lr_scale multiplies them): tuned for 5,000 steps (CO2-Net, DELU: 5e-5) or
10,000 (SAL: 1e-4), they leave CO2-Net and DELU far from converged after 300
steps (a few % average mAP here, where --lr_scale=10 reached 71% and 65% with one
member each on 2 CPU cores).

Prints a header (the command line, the workload, the evaluation protocol and the
test set), then one line per method:

    method  K  last step  selected on test  selected on held-out  step ms

Each cell is the average mAP(0.1:0.7) (%), the THUMOS14 number of the three
papers, mean ± sample std over the K members: at the last step; at each member's
step with the best test score (the authors' selection, on the test set); at each
member's step with the best score on the held-out training videos, scored on the
test set. step ms is the median time
of one jitted step of all K members (ended by block_until_ready; the compiling
first step left out). The last line gives the wall time. The trainer's own output
goes to <workdir>/<method>/stdout.txt.

--protocol: 'common' evaluates every method with one protocol (ActivityNet-style
AP on the data's gt.json, salx's default); 'own' evaluates each with its authors'
(SAL: activitynet; CO2-Net, DELU: wtalc, with the Ambiguous filter of
official_annotations/test/Ambiguous_test.txt beside the annotations on uncropped
videos), through `config.protocol`. A trainer without `config.protocol`
evaluates every method with ActivityNet-style AP: 'own' is then refused and the
header says so. Both protocols score against the data's gt.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_protocol import default_annotations  # noqa: E402  (the same gt.json search)
from salx.app import report  # noqa: E402  (its one mean ± std)

METHODS = ("sal", "co2net", "delu")
TITLES = {"sal": "SAL", "co2net": "CO2-Net", "delu": "DELU"}
# Each method's own evaluation protocol (--protocol=own).
OWN_PROTOCOL = {"sal": "activitynet", "co2net": "wtalc", "delu": "wtalc"}
COMMON_PROTOCOL = "activitynet"


# ----------------------------------------------------------------------------
# The workload.


def stratified_videos(annotations: str, subset: str, per_class: int) -> List[str]:
  """The first `per_class` videos (by name) of each class of `subset`, a video's
  class being its first label in sorted order (as `salx.app.data` groups
  them); every video of the subset when per_class is 0."""
  with open(annotations, encoding="utf-8") as f:
    database = json.load(f)["database"]
  groups = collections.defaultdict(list)
  for name in sorted(database):
    entry = database[name]
    labels = sorted(a["label"] for a in entry.get("annotations", []))
    if entry.get("subset") == subset and labels:
      groups[labels[0]].append(name)
  if per_class <= 0:
    return sorted(n for g in groups.values() for n in g)
  return sorted(n for label in sorted(groups) for n in groups[label][:per_class])


def feature_spec(args):
  """The features' knobs: the demo's (configs/synthetic.py), at --feature_dim."""
  import configs.synthetic  # pylint: disable=g-import-not-at-top
  from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
  return synthetic.SyntheticSpec(**dict(configs.synthetic.SYNTHETIC_SPEC, seed=args.seed),
                                 feature_dim=args.feature_dim)


def make_data(args) -> Tuple[str, Dict[str, int]]:
  """(the data folder, {'train', 'test': videos}); made once per set of arguments."""
  from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
  spec = feature_spec(args)
  splits = {"train": stratified_videos(args.annotations, "train", args.train_per_class),
            "test": stratified_videos(args.annotations, "test", args.test_per_class)}
  video_info = os.path.join(os.path.dirname(args.annotations), "video_info.csv")
  video_info = video_info if os.path.isfile(video_info) else None
  max_snippets = args.max_snippets or None
  data_dir = args.data_dir
  if not data_dir:
    key = json.dumps([dataclasses.asdict(spec), os.path.abspath(args.annotations),
                      video_info, max_snippets, splits], sort_keys=True)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    data_dir = os.path.join(cache, "salx", "compare-methods-"
                            + hashlib.sha256(key.encode()).hexdigest()[:12])
  data_dir = os.path.abspath(data_dir)
  split_dir = data_dir.rstrip(os.sep) + ".splits"
  os.makedirs(split_dir, exist_ok=True)
  split_files = {}
  for split, names in splits.items():
    split_files[split] = os.path.join(split_dir, f"split_{split}.txt")
    with open(split_files[split], "w", encoding="utf-8") as f:
      f.write("\n".join(names) + "\n")
  folder = synthetic.make_synthetic_dataset(
      data_dir, spec, "sal", args.annotations, dataset="thumos14", video_info=video_info,
      split_files=split_files, max_snippets=max_snippets, progress=False)
  return folder, {k: len(v) for k, v in splits.items()}


def test_set(data_dir: str) -> str:
  """'N test videos, M instances' of the data's gt.json."""
  from salx.postprocess import ground_truth  # pylint: disable=g-import-not-at-top
  gt = ground_truth.load_ground_truth(os.path.join(data_dir, "gt.json"), "test")
  return f"{len(gt.video_ids)} test videos, {len(gt.label)} instances"


def make_config(method: str, args, data_dir: str, protocol: Optional[str]):
  """The method's config at the workload's sizes."""
  import configs.co2net_thumos  # pylint: disable=g-import-not-at-top
  import configs.delu_thumos  # pylint: disable=g-import-not-at-top
  import configs.thumos  # pylint: disable=g-import-not-at-top
  config = {"sal": configs.thumos, "co2net": configs.co2net_thumos,
            "delu": configs.delu_thumos}[method].get_config()
  hp = config[method]
  hp.learning_rate = hp.learning_rate * args.lr_scale
  if method == "sal":
    hp.hidden_dim = args.width
    if args.num_segments:
      hp.num_segments = args.num_segments
  else:
    hp.attention_hidden = args.width
    if args.num_segments:
      hp.max_seqlen = args.num_segments
    hp.max_iter = args.num_steps   # The curriculum spans the run, as in their scripts.
  config.update(dict(
      dataset="thumos14", data_dir=data_dir, layout="sal", feature_dim=args.feature_dim,
      num_steps=args.num_steps, num_seeds=args.num_seeds, seed=args.seed,
      holdout_fraction=args.holdout_fraction, eval_every=args.eval_every,
      eval_start_step=min(args.eval_every, args.num_steps), eval_workers=0,
      checkpoint_every=args.num_steps, log_every=args.eval_every, check_data="quick"))
  if protocol is not None:
    config.protocol = protocol
    if protocol == "wtalc" and "ambiguous_file" in config:
      config.ambiguous_file = ambiguous_file(args)
  return config


def ambiguous_file(args) -> str:
  """Ambiguous_test.txt beside the annotations for the W-TALC pipeline's filter, on
  uncropped videos only (a cropped copy moves its instances, not the file's
  segments); '' otherwise."""
  path = os.path.join(os.path.dirname(args.annotations), "official_annotations", "test",
                      "Ambiguous_test.txt")
  return path if not args.max_snippets and os.path.isfile(path) else ""


# ----------------------------------------------------------------------------
# One method's run.


class StepTimer:
  """Times every call of the members' jitted step (ended by block_until_ready)."""

  def __init__(self):
    self.times: List[float] = []

  @contextlib.contextmanager
  def installed(self):
    import jax  # pylint: disable=g-import-not-at-top
    from salx.core import sharding  # pylint: disable=g-import-not-at-top
    original = sharding.jit_members_step

    def jit_members_step(*a, **kw):
      step = original(*a, **kw)

      def timed(*args):
        start = time.perf_counter()
        out = jax.block_until_ready(step(*args))
        self.times.append(time.perf_counter() - start)
        return out
      return timed

    sharding.jit_members_step = jit_members_step
    try:
      yield self
    finally:
      sharding.jit_members_step = original

  def median_ms(self) -> float:
    steady = self.times[1:] or self.times
    return 1e3 * statistics.median(steady) if steady else float("nan")


@dataclasses.dataclass
class MethodResult:
  method: str
  members: int
  summary: dict
  record: dict          # Member 0's last test record (protocol, thresholds, videos).
  step_ms: float
  wall_s: float


def run_method(method: str, args, data_dir: str, workdir: str,
               protocol: Optional[str]) -> MethodResult:
  from salx.app import trainer  # pylint: disable=g-import-not-at-top
  config = make_config(method, args, data_dir, protocol)
  run_dir = os.path.join(workdir, method)
  shutil.rmtree(run_dir, ignore_errors=True)
  os.makedirs(run_dir)
  timer = StepTimer()
  start = time.perf_counter()
  with open(os.path.join(run_dir, "stdout.txt"), "w", encoding="utf-8") as log, \
      contextlib.redirect_stdout(log), timer.installed():
    result = trainer.train_and_evaluate(config, run_dir)
  if result.status != "completed":
    raise RuntimeError(f"{method}: the run ended {result.status} at step {result.step}")
  record = result.metrics["members"][0]["last"]
  return MethodResult(method, len(result.metrics["members"]), result.metrics["summary"],
                      record, timer.median_ms(), time.perf_counter() - start)


# ----------------------------------------------------------------------------
# The table.


def _cell(summary: Optional[dict]) -> str:
  value = _average(summary)
  if not value or value["mean"] is None:
    return "-"
  return report.MeanStd(**value).text()


def format_table(results: Sequence[MethodResult]) -> List[str]:
  header = ["method", "K", "last step", "selected on test",
            "selected on held-out training videos", "step ms"]
  rows = [[TITLES[r.method], str(r.members), _cell(r.summary.get("last")),
           _cell(r.summary.get("best")), _cell(r.summary.get("holdout")),
           f"{r.step_ms:.1f}"] for r in results]
  widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
  render = lambda cells: "  ".join(
      [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])
  return [render(header), "-" * len(render(header))] + [render(row) for row in rows]


AVERAGE = "AVG(0.1:0.7)"   # The THUMOS14 number all three papers report.


def _average(summary: Optional[dict]) -> Optional[dict]:
  if not summary:
    return None
  return summary.get(AVERAGE) or summary.get("average_mAP")


def protocol_name(record: dict, fallback: str) -> str:
  """The protocol a record was scored with."""
  if record.get("protocol_name"):
    return str(record["protocol_name"])
  text = str(record.get("protocol", ""))
  if text.startswith("protocol "):
    return text.split()[1].rstrip(":")
  return fallback


def protocol_lines(results: Sequence[MethodResult], requested: str, has_protocol: bool,
                   data_test_set: str, ambiguous: str) -> List[str]:
  """The evaluation protocol and test set of each method's records."""
  from salx.postprocess import protocols  # pylint: disable=g-import-not-at-top
  used = collections.OrderedDict()
  for r in results:
    name = protocol_name(r.record, protocol_map(requested)[r.method])
    if "ground_truth_videos" in r.record:
      test = (f"{r.record['ground_truth_videos']} test videos, "
              f"{r.record['ground_truth_instances']} instances")
    else:
      test = data_test_set
    used.setdefault((name, test), []).append(TITLES[r.method])
  lines = [f"protocol: --protocol={requested}"]
  if not has_protocol:
    lines[0] += (" (this trainer has no config.protocol: 'common' only, every method "
                 "scored with salx's ActivityNet-style AP)")
  for (name, test), names in used.items():
    extra = ""
    if name == protocols.WTALC.name:
      extra = (f", Ambiguous filter from {ambiguous}" if ambiguous else
               ", no Ambiguous filter (cropped synthetic videos hold no Ambiguous part)")
    lines.append(f"  {', '.join(names)}: {name} ({protocols.get_protocol(name).title}"
                 f"{extra}); test set: {test} (the data's gt.json)")
  return lines


def protocol_map(requested: str) -> Dict[str, str]:
  return dict(OWN_PROTOCOL) if requested == "own" else {m: COMMON_PROTOCOL for m in METHODS}


def trainer_has_protocol() -> bool:
  """Whether the configs carry `config.protocol` (the trainer then honours it)."""
  import configs.base  # pylint: disable=g-import-not-at-top
  return "protocol" in configs.base.get_config()


# ----------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--methods", default=",".join(METHODS),
                      help=f"comma-separated subset of {','.join(METHODS)}")
  parser.add_argument("--num_seeds", type=int, default=4, help="K, members per method")
  parser.add_argument("--protocol", default="common", choices=["common", "own"],
                      help="one protocol for all methods, or each method's own")
  parser.add_argument("--annotations", default=default_annotations(),
                      help="THUMOS14 gt.json whose videos to copy")
  parser.add_argument("--train_per_class", type=int, default=4,
                      help="training videos per class (0: all 200)")
  parser.add_argument("--test_per_class", type=int, default=3,
                      help="test videos per class (0: all 210)")
  parser.add_argument("--max_snippets", type=int, default=320,
                      help="crop longer videos to this many snippets (0: whole videos)")
  parser.add_argument("--feature_dim", type=int, default=256)
  parser.add_argument("--width", type=int, default=64,
                      help="SAL's hidden width, CO2-Net/DELU's attention width")
  parser.add_argument("--num_segments", type=int, default=128,
                      help="T of every method (0: each method's own, 750/500/320)")
  parser.add_argument("--num_steps", type=int, default=300)
  parser.add_argument("--eval_every", type=int, default=50,
                      help="evaluate every this many steps from this step on")
  parser.add_argument("--lr_scale", type=float, default=1.0,
                      help="multiply each method's own learning rate by this (1: the "
                      "authors' rates)")
  parser.add_argument("--holdout_fraction", type=float, default=0.25,
                      help="training videos held out to select each member's step")
  parser.add_argument("--seed", type=int, default=0,
                      help="the data's and the first member's seed, for every method")
  parser.add_argument("--data_dir", default="",
                      help="the data folder (made there on first use; default under "
                      "~/.cache/salx, named by the arguments)")
  parser.add_argument("--workdir", default="",
                      help="keep the runs here (default: a temporary folder, removed)")
  args = parser.parse_args(argv)
  methods = [m for m in args.methods.split(",") if m]
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    parser.error(f"--methods: unknown {unknown}; choose from {','.join(METHODS)}")
  args.methods = methods
  if not args.annotations or not os.path.isfile(args.annotations):
    parser.error(f"--annotations: THUMOS14 gt.json not found ({args.annotations!r}); "
                 "set SALX_DATA_DIR or pass --annotations")
  if args.lr_scale <= 0:
    parser.error("--lr_scale must be positive")
  for name in ("num_seeds", "feature_dim", "width", "num_steps", "eval_every"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be positive")
  if not 0 < args.holdout_fraction < 1:
    parser.error("--holdout_fraction must be in (0, 1)")
  return args


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  has_protocol = trainer_has_protocol()
  if args.protocol == "own" and not has_protocol:
    print("compare_methods: --protocol=own needs config.protocol, which this trainer "
          "lacks (every method is evaluated with ActivityNet-style AP); use "
          "--protocol=common", file=sys.stderr)
    return 2
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from salx import cli  # pylint: disable=g-import-not-at-top
  cli.import_quietly("tensorflow")   # The data feed's; muted start-up lines.
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  # As `python -m salx.main`: the console shows warnings, <run>/log.txt everything.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  runtime.show_library_logs(False)

  start = time.perf_counter()
  data_dir, counts = make_data(args)
  data_s = time.perf_counter() - start
  workdir = args.workdir or tempfile.mkdtemp(prefix="compare-methods-")
  results = []
  try:
    for method in args.methods:
      protocol = protocol_map(args.protocol)[method] if has_protocol else None
      print(f"compare_methods: training {TITLES[method]} ({args.num_seeds} members) ...",
            file=sys.stderr, flush=True)
      results.append(run_method(method, args, data_dir, workdir, protocol))
      print(f"compare_methods: {TITLES[method]} done in {results[-1].wall_s:.0f} s",
            file=sys.stderr, flush=True)
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)
  wall_s = time.perf_counter() - start

  held = round(args.holdout_fraction * 100)
  lines = [
      "command: " + shlex.join(["python", "experiments/compare_methods.py"] + argv),
      (f"workload: THUMOS14-shaped synthetic data ({args.annotations}: "
       f"{counts['train']} training videos, {held}% of each class held out, "
       f"{counts['test']} test videos, 20 classes"
       + (f", cropped to {args.max_snippets} snippets" if args.max_snippets else "")
       + f"; {args.feature_dim}-d features) in {data_dir}"),
      (f"training: each method's own config at width {args.width}, "
       + (f"T {args.num_segments}" if args.num_segments else "its own T")
       + f", {args.num_steps} steps, an evaluation every {args.eval_every} steps, "
       + ("the authors' learning rates" if args.lr_scale == 1 else
          f"{args.lr_scale:g} x the authors' learning rates") + "; "
       f"K = {args.num_seeds} members, seeds {args.seed}..{args.seed + args.num_seeds - 1}; "
       f"{jax.device_count()} x {jax.default_backend()}"),
  ]
  lines += protocol_lines(results, args.protocol, has_protocol, test_set(data_dir),
                          ambiguous_file(args))
  lines.append(f"{AVERAGE} mAP (%), mean ± sample std over the K members")
  lines += format_table(results)
  lines.append(f"compare_methods wall_s={wall_s:.0f} data_s={data_s:.0f} "
               + " ".join(f"{r.method}_s={r.wall_s:.0f}" for r in results))
  print("\n".join(lines), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
