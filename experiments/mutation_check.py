"""Mutation drill: one small bug at a time, and whether the tests catch it.

    python experiments/mutation_check.py [--quick] [--only NAME]... [--jobs N] [--list]

Each mutation replaces one snippet, which must occur exactly once in its file (a
stale one is reported and nothing runs). Per mutation the repository (`git
ls-files`: tracked and not ignored files; no .git, no .venv) is copied to a
temporary folder and edited there, and pytest runs in the copy with this Python and
PYTHONPATH set to it: the mutation's own tests with -x, then, if they all pass and
not --quick, the whole suite with -x -q. Tests failing on an unmutated copy are
deselected (and named on stderr). Prints `caught NAME FILE test=FIRST_FAILING_TEST`
or `SURVIVED NAME FILE` per mutation, then `mutation_check mutations=N caught=C
survived=S survival_rate=X`. Exit status 0 when none survives, 1 otherwise, 2 for
bad input.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIERS = ("core", "methods", "postprocess", "datasets", "app")
# Its checks read every snippet unmutated, so it fails in any mutated copy.
SELF_TEST = "tests/experiments/test_mutation_check.py"
_EXCLUDED_TOP = (".git", ".venv")


class MutationError(ValueError):
  """A mutation or an argument the drill cannot use; the message is one line."""


class Mutation(NamedTuple):
  """One small bug: `snippet` of `file` (exactly once there) becomes `replacement`.

  `tests` are pytest targets (files, or file::test ids) most likely to catch it.
  """
  name: str
  file: str
  snippet: str
  replacement: str
  tests: Tuple[str, ...]

  @property
  def tier(self) -> str:
    """'core', 'methods', 'postprocess', 'datasets' or 'app' (salx/<tier>/...)."""
    return self.file.split("/")[1]


def _m(name, file, snippet, replacement, *tests) -> Mutation:
  """A mutation of salx/<file>; test 'd/test_x' is tests/d/test_x.py, 'd/test_x::t'
  its test t."""
  def target(test):
    module, _, node = test.partition("::")
    return f"tests/{module}.py" + (f"::{node}" if node else "")
  return Mutation(name, f"salx/{file}", snippet, replacement, tuple(map(target, tests)))


_LOSSES = "parity/test_parity_sal_step::test_parity_pseudo_labels_masks_and_losses"
_OUTPUTS = "parity/test_parity_sal_step::test_parity_model_outputs"
_WTALC = "experiments/test_mutation_gaps::test_wtalc_subsets_map_to_their_splits"

# Snippets in salx/app/trainer.py and salx/app/evaluation.py were chosen to outlast edits.
MUTATIONS: Tuple[Mutation, ...] = (
    # salx/methods (SAL)
    _m("thumos_pseudo_topk_extra", "methods/sal/hparams.py", "    pseudo_topk_extra=17,",
       "    pseudo_topk_extra=16,", "methods/test_sal_shipped_settings", _LOSSES),
    _m("activitynet_mask_var_factor", "methods/sal/hparams.py", "    mask_var_factor=6.0,",
       "    mask_var_factor=5.0,", "methods/test_sal_shipped_settings", _LOSSES),
    _m("thumos_beta", "methods/sal/hparams.py", "    beta=0.35,", "    beta=0.4,",
       "methods/test_sal_shipped_settings", "parity/test_parity_sal_localization"),
    _m("default_outer_lambda", "methods/sal/hparams.py", "  outer_lambda: float = 0.2",
       "  outer_lambda: float = 0.25", "methods/test_sal_shipped_settings", "parity/test_parity_sal_localization"),
    _m("gce_negatives_subtracted", "methods/sal/losses.py", "return jnp.mean(pos) + jnp.mean(neg)",
       "return jnp.mean(pos) - jnp.mean(neg)", "methods/test_sal_losses", _LOSSES),
    _m("uniform_kl_sign", "methods/sal/losses.py", "(log_u - jax.nn.log_softmax(logits, axis=-1))",
       "(log_u + jax.nn.log_softmax(logits, axis=-1))", "methods/test_sal_losses", _LOSSES),
    _m("mix_term_weighted_by_act", "methods/sal/losses.py", '+ weights.mix * terms["mix"])',
       '+ weights.act * terms["mix"])', "methods/test_sal_losses", _LOSSES,
       "experiments/test_mutation_gaps::test_each_loss_weight_scales_its_own_term_only"),
    _m("mix_label_union_becomes_intersection", "methods/sal/pseudo_labels.py",
       "(g + roll_batch(g) >= 1)", "(g + roll_batch(g) >= 2)", "methods/test_sal_losses"),
    _m("mask_variance_biased", "methods/sal/pseudo_labels.py", "jnp.var(top_prob, ddof=1)",
       "jnp.var(top_prob, ddof=0)", "methods/test_sal_losses", _LOSSES),
    _m("mask_penalises_above_mean", "methods/sal/pseudo_labels.py",
       "jnp.minimum(top_prob - mu, 0.0)", "jnp.maximum(top_prob - mu, 0.0)", "methods/test_sal_losses"),
    _m("confidence_gate_third", "methods/sal/pseudo_labels.py", "(confidence, num_segments // 2)",
       "(confidence, num_segments // 3)", "methods/test_sal_losses", _LOSSES),
    _m("cas_bg_not_complemented", "methods/sal/model.py", "cas_bg = cas * (1.0 - a)[..., None]",
       "cas_bg = cas * a[..., None]", "methods/test_sal_model", _OUTPUTS),
    _m("mix_branch_bias_twice", "methods/sal/model.py", "pre + roll_batch(pre) - bias",
       "pre + roll_batch(pre)", _OUTPUTS),
    _m("mixup_roll_direction", "methods/sal/model.py", "return jnp.roll(z, 1, axis=0)",
       "return jnp.roll(z, -1, axis=0)", "methods/test_sal_losses", _OUTPUTS),
    _m("fused_actionness_streams_swapped", "methods/sal/model.py",
       "(1.0 - rgb_weight) * action_flow + rgb_weight * action_rgb",
       "(1.0 - rgb_weight) * action_rgb + rgb_weight * action_flow", "methods/test_sal_losses", _OUTPUTS),
    # salx/core
    _m("method_state_not_written_back", "core/train_step.py",
       "opt_state=opt_state,\n                              method_state=method_state)",
       "opt_state=opt_state,\n                              method_state=state.method_state)",
       "methods/test_sal_learning::test_mask_statistics_carried_in_the_state_are_the_running_ema"),
    _m("decoupled_weight_decay", "core/train_step.py",
       "    return optax.chain(optax.add_decayed_weights(weight_decay),\n"
       "                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))",
       "    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps),\n"
       "                       optax.add_decayed_weights(weight_decay),\n"
       "                       optax.scale(-learning_rate))",
       "parity/test_parity_sal_step::test_parity_gradients_and_adam_step",
       "methods/test_sal_learning::test_first_step_is_adams_first_update_with_coupled_decay"),
    _m("dropout_key_not_folded_with_step", "core/train_step.py",
       "dropout_rng = jax.random.fold_in(rng, state.step)", "dropout_rng = rng",
       "core/test_train_step::test_same_rng_same_result_and_dropout_changes_with_the_step"),
    _m("torch_format_allows_getattr", "core/torch_format.py",
       '    "collections.OrderedDict": collections.OrderedDict,',
       '    "collections.OrderedDict": collections.OrderedDict,\n'
       '    "builtins.getattr": getattr,', "methods/test_sal_official_checkpoint"),
    # salx/postprocess
    _m("oic_outer_end_one_further", "postprocess/localization.py",
       "np.trunc(e + outer_lambda * n)", "np.trunc(e + 1 + outer_lambda * n)",
       "postprocess/test_curves", "parity/test_parity_sal_localization"),
    _m("oic_outer_start_skips_first", "postprocess/localization.py",
       "outer_s = np.maximum(0, ", "outer_s = np.maximum(1, ", "postprocess/test_curves",
       "parity/test_parity_sal_localization"),
    _m("proposal_end_without_plus_one", "postprocess/localization.py",
       "end = (runs.end + 1) * t_factor", "end = runs.end * t_factor", "postprocess/test_localization",
       "parity/test_parity_sal_localization"),
    _m("soft_nms_linear_decay", "postprocess/nms.py", "np.exp(-np.square(iou) / nms_alpha)",
       "np.exp(-iou / nms_alpha)", "postprocess/test_nms", "parity/test_parity_sal_localization"),
    _m("iou_intersection_without_plus_one", "postprocess/nms.py",
       "np.minimum(e1, e2) - np.maximum(s1, s2) + 1)",
       "np.minimum(e1, e2) - np.maximum(s1, s2))", "postprocess/test_nms", "parity/test_parity_sal_localization"),
    _m("argmax_fallback_takes_argmin", "postprocess/scores.py",
       "rows[none, np.argmax(scores[none], axis=1)]",
       "rows[none, np.argmin(scores[none], axis=1)]", "postprocess/test_localization", "postprocess/test_classification"),
    _m("ap_precision_not_interpolated", "postprocess/ap.py",
       "mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]",
       "mprec = mprec[:, :]", "postprocess/test_ap", "parity/test_parity_sal_activitynet13_postprocess"),
    # salx/datasets
    _m("uniform_sample_shifted_one_bin", "datasets/sampling.py",
       "return bin_edges(length, num_segments)[:-1]",
       "return bin_edges(length, num_segments)[1:] - 1", "datasets/test_sampling"),
    _m("activitynet_bins_exclude_upper_edge", "datasets/sampling.py",
       "rng.integers(edges[:-1], edges[1:], endpoint=True)",
       "rng.integers(edges[:-1], edges[1:], endpoint=False)", "datasets/test_sampling"),
    _m("npy_unpickler_falls_back_to_builtins", "datasets/npy.py",
       "    except KeyError:\n      raise self._refuse(",
       "    except KeyError:\n      if module == 'builtins':\n"
       "        return super().find_class(module, name)\n      raise self._refuse(", "datasets/test_npy"),
    _m("wtalc_thumos_subsets_swapped", "datasets/wtalc_layout.py",
       '"thumos14": {"train": "validation", "test": "test"},',
       '"thumos14": {"train": "test", "test": "validation"},',
       "datasets/test_wtalc_layout", "datasets/test_layouts", _WTALC),
    _m("wtalc_activitynet13_subsets_swapped", "datasets/wtalc_layout.py",
       '"activitynet13": {"train": "training", "test": "validation"},',
       '"activitynet13": {"train": "validation", "test": "training"},',
       "datasets/test_wtalc_layout", "datasets/test_layouts", _WTALC),
    _m("epoch_order_shares_the_sampling_stream", "datasets/batches.py",
       "default_rng([seed, _PERMUTATION_STREAM, epoch])", "default_rng([seed, epoch])",
       "datasets/test_input_pipeline"),
    _m("eval_rows_of_a_host_batch", "datasets/batches.py",
       "index = batch * batch_size + process_index * local + row",
       "index = batch * local + process_index * local + row", "datasets/test_input_pipeline"),
    # salx/app
    _m("resume_one_step_late", "app/trainer.py",
       "start_step = int(jax.device_get(state.step)[0])",
       "start_step = int(jax.device_get(state.step)[0]) + 1",
       "e2e/test_train_and_evaluate::test_run_killed_with_sigkill_resumes_to_the_same_metrics"),
    _m("evaluator_keeps_only_unevaluated_classes", "app/evaluation.py",
       "~np.isin(detections.label, self.unevaluated)",
       "np.isin(detections.label, self.unevaluated)",
       "e2e/test_train_and_evaluate::test_classes_without_test_instances_are_left_out"),
    _m("best_checkpoint_ties_take_the_later", "app/report.py",
       "self.average_mAP > best.average_mAP",
       "self.average_mAP >= best.average_mAP", "app/test_report"),
    _m("odd_feature_dim_accepted", "app/config.py", "if config.feature_dim % 2:",
       "if False:", "app/test_configs",
       "experiments/test_mutation_gaps::test_an_odd_feature_dim_is_refused_naming_the_field"),
    _m("activitynet_keep_all_check_removed", "app/config.py",
       'if getattr(hp, "sampling", None) == "activitynet" and not '
       "config.eval_keep_all_if_shorter:",
       "if False:", "app/test_configs",
       "experiments/test_mutation_gaps::test_activitynet_sampling_requires_keeping_short_test_videos_whole"),
    # The config check of T against the largest top-k, now the method's own.
    _m("largest_topk_check_removed", "methods/sal/method.py",
       "    if largest > hp.num_segments:", "    if False:", "app/test_configs", "app/test_main_errors"),
)


# ---------------------------------------------------------------------------
# Mutations and copies.


def find_mutation(name: str) -> Mutation:
  for mutation in MUTATIONS:
    if mutation.name == name:
      return mutation
  raise MutationError(f"--only: no mutation named {name!r} (see --list)")


def mutated_source(text: str, mutation: Mutation) -> str:
  """`text` with the mutation's snippet replaced; a MutationError unless it occurs once."""
  count = text.count(mutation.snippet)
  if count != 1:
    raise MutationError(
        f"stale mutation {mutation.name}: its snippet occurs {count} times in "
        f"{mutation.file} (expected exactly once): {mutation.snippet.splitlines()[0]!r}")
  return text.replace(mutation.snippet, mutation.replacement)


def _read(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except OSError as e:
    raise MutationError(f"{path}: cannot read ({e.strerror})") from None


def check_mutation(root: str, mutation: Mutation) -> None:
  """A MutationError naming the file when the mutation no longer applies to `root`."""
  mutated_source(_read(os.path.join(root, mutation.file)), mutation)
  for target in mutation.tests:
    if not os.path.isfile(os.path.join(root, target.split("::")[0])):
      raise MutationError(f"mutation {mutation.name}: test file {target} does not exist")


def repository_files(root: str) -> List[str]:
  """Files of the working tree git knows or would add (relative paths), no .git/.venv."""
  try:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True).stdout.decode("utf-8")
  except (OSError, subprocess.CalledProcessError) as e:
    raise MutationError(f"{root}: not a git checkout (git ls-files failed: {e})") from None
  return [p for p in dict.fromkeys(listed.split("\0")) if p and p.split("/")[0]
          not in _EXCLUDED_TOP and os.path.isfile(os.path.join(root, p))]


def copy_repository(root: str, files: Sequence[str], dest: str) -> None:
  for relative in files:
    os.makedirs(os.path.dirname(os.path.join(dest, relative)), exist_ok=True)
    shutil.copy2(os.path.join(root, relative), os.path.join(dest, relative))


def apply_mutation(copy_root: str, mutation: Mutation) -> None:
  """Edits the mutation's file in `copy_root` (a copy, never the repository)."""
  path = os.path.join(copy_root, mutation.file)
  text = mutated_source(_read(path), mutation)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


# ---------------------------------------------------------------------------
# pytest runs.


class PytestRun(NamedTuple):
  """One pytest run: exit status (-1: timed out), failing test ids in order, output tail."""
  returncode: int
  failures: Tuple[str, ...]
  tail: str


_FAILURE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$")


def run_pytest(copy_root: str, targets: Sequence[str], *, stop_first: bool,
               deselect: FrozenSet[str] = frozenset(), timeout: float = 1800.0,
               data_dir: Optional[str] = None) -> PytestRun:
  """pytest in `copy_root` with this Python and PYTHONPATH = `copy_root`."""
  args = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
          f"--ignore={SELF_TEST}"] + (["-x"] if stop_first else [])
  args += [a for test in sorted(deselect) for a in ("--deselect", test)]
  env = dict(os.environ, PYTHONPATH=copy_root, PYTHONDONTWRITEBYTECODE="1")
  if data_dir and "SALX_DATA_DIR" not in os.environ:
    env["SALX_DATA_DIR"] = data_dir   # What the suite reads in the repository itself.
  try:
    done = subprocess.run(args + list(targets), cwd=copy_root, env=env, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  except subprocess.TimeoutExpired:
    return PytestRun(-1, (f"timeout after {timeout:g} s",), "")
  out = done.stdout.decode("utf-8", "replace")
  if done.returncode not in (0, 1, 2, 5):
    raise MutationError(f"pytest in {copy_root} exited with status {done.returncode}: "
                        f"{(out.strip().splitlines() or ['no output'])[-1]}")
  failures = (m.group(1) for m in map(_FAILURE.match, out.splitlines()) if m)
  return PytestRun(done.returncode, tuple(dict.fromkeys(failures)), out[-3000:])


def _covers(target: str, test: str) -> bool:
  """Whether pytest target `target` (file or test id) selects test id `test`."""
  return test == target or test.startswith((target + "::", target + "["))


class Drill:
  """Runs mutations against copies of `root`; each baseline is computed once."""

  def __init__(self, root: str, *, quick: bool, timeout: float = 1800.0, log=sys.stderr):
    self.root, self.quick, self.timeout, self.log = root, quick, timeout, log
    self.files = repository_files(root)
    self.data_dir = os.path.join(os.path.dirname(os.path.abspath(root)), "shared", "data")
    self._baselines: Dict[Tuple[str, ...], FrozenSet[str]] = {}
    self._lock = threading.Lock()

  def _run(self, mutation: Optional[Mutation], targets, **kw) -> PytestRun:
    with tempfile.TemporaryDirectory(prefix="salx-mutation-") as copy_root:
      copy_repository(self.root, self.files, copy_root)
      if mutation is not None:
        apply_mutation(copy_root, mutation)
      return run_pytest(copy_root, targets, timeout=self.timeout, data_dir=self.data_dir,
                        **kw)

  def baseline(self, targets: Tuple[str, ...]) -> FrozenSet[str]:
    """Tests among `targets` (() = the whole suite) failing on an unmutated copy."""
    with self._lock:
      if targets not in self._baselines:
        run = self._run(None, targets, stop_first=False)
        if run.returncode not in (0, 1, 5):
          raise MutationError(f"the unmutated copy does not run its tests "
                              f"({', '.join(run.failures) or run.tail[-200:]})")
        self._baselines[targets] = frozenset(run.failures)
        for test in run.failures:
          print(f"baseline: {test} fails without any mutation; left out", file=self.log)
      return self._baselines[targets]

  def prepare(self, mutations: Sequence[Mutation]) -> None:
    """One baseline run over the union of the mutations' own tests."""
    failing = self.baseline(tuple(sorted({t for m in mutations for t in m.tests})))
    for m in mutations:
      self._baselines.setdefault(m.tests, frozenset(
          f for f in failing if any(_covers(t, f) for t in m.tests)))

  def check(self, mutation: Mutation) -> Tuple[str, str]:
    """('caught', first failing test) or ('survived', '')."""
    for targets in [mutation.tests] + ([] if self.quick else [()]):
      run = self._run(mutation, targets, stop_first=True, deselect=self.baseline(targets))
      if run.returncode not in (0, 5):   # 5: every selected test left out.
        return "caught", (run.failures[0] if run.failures else f"exit {run.returncode}")
    return "survived", ""


def result_line(outcomes: Sequence[Tuple[Mutation, str, str]]) -> str:
  caught = sum(status == "caught" for _, status, _ in outcomes)
  survived = len(outcomes) - caught
  return (f"mutation_check mutations={len(outcomes)} caught={caught} survived={survived} "
          f"survival_rate={survived / len(outcomes) if outcomes else 0.0:.3f}")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", action="append", metavar="NAME",
                      help="run only this mutation (repeatable)")
  parser.add_argument("--list", action="store_true", help="list the mutations and exit")
  parser.add_argument("--jobs", type=int, default=1, help="copies tested in parallel")
  parser.add_argument("--quick", action="store_true",
                      help="run each mutation's own tests only, not the whole suite")
  parser.add_argument("--timeout", type=float, default=1800.0,
                      help="seconds one pytest run may take (a hang counts as caught)")
  parser.add_argument("--root", default=ROOT, help="the repository (default: this one)")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.jobs < 1 or args.timeout <= 0:
      raise MutationError(f"--jobs must be at least 1 and --timeout positive, got "
                          f"{args.jobs} and {args.timeout:g}")
    mutations = ([find_mutation(n) for n in dict.fromkeys(args.only)] if args.only
                 else list(MUTATIONS))
    if args.list:
      for m in mutations:
        print(f"{m.name} {m.tier} {m.file} tests={','.join(m.tests)}")
      return 0
    stale = []
    for m in mutations:
      try:
        check_mutation(args.root, m)
      except MutationError as e:
        stale.append(str(e))
    if stale:
      raise MutationError("\nmutation_check: ".join(stale))
    drill = Drill(args.root, quick=args.quick, timeout=args.timeout)
    drill.prepare(mutations)
    outcomes = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      for m, (status, test) in zip(mutations, pool.map(drill.check, mutations)):
        print(f"caught {m.name} {m.file} test={test}" if status == "caught"
              else f"SURVIVED {m.name} {m.file}", flush=True)
        outcomes.append((m, status, test))
  except MutationError as e:
    print(f"mutation_check: {e}", file=sys.stderr)
    return 2
  print(result_line(outcomes), flush=True)
  return 0 if all(status == "caught" for _, status, _ in outcomes) else 1


if __name__ == "__main__":
  sys.exit(main())
