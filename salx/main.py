r"""salx command line: train and evaluate a WTAL method, or evaluate a run's checkpoint.

    python -m salx.main --config=configs/synthetic.py --workdir=/tmp/salx-demo
    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR
    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR \
        --mode=evaluate --config.eval_checkpoint=latest

Every config field can be overridden as --config.field=value (ml_collections); the
method's hyperparameters are under --config.<method>. (e.g. --config.sal.nms_thresh).
--show_config prints every field of the config with its value, and exits.
Running the same command again in the same workdir resumes where the run stopped.

Exit status: 0 done (also after SIGTERM, which checkpoints and stops; run the
command again to resume), 1 the training diverged (NaN or infinite loss; the last
good checkpoint is kept), 2 a bad config or data folder (nothing was trained), 130
interrupted with Ctrl-C (checkpointed first; a second Ctrl-C stops at once).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import traceback

from salx import cli

cli.require_extra("salx.main", "train", cli.TRAIN_MODULES)

from absl import flags
from absl import logging
from ml_collections import config_flags


_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "configs", "synthetic.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", _DEFAULT_CONFIG if os.path.isfile(_DEFAULT_CONFIG) else None,
    "Config file (configs/*.py); fields are overridden with --config.field=value. "
    "Default: configs/synthetic.py, the demo.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the run: checkpoints, "
                               "logs, reports. Required.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate"],
                          "train: train and evaluate (resuming in workdir); evaluate: "
                          "evaluate the workdir's config.eval_checkpoint.")
_PLOTS = flags.DEFINE_bool(
    "plots", True, "With --mode=evaluate on a finished run: also draw its pictures "
    "into workdir/plots (as python -m salx.visualize does).")
_SHOW_CONFIG = flags.DEFINE_bool(
    "show_config", False, "Print every field of the config (after the overrides) and "
    "exit; no --workdir needed.")

EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _verbose() -> bool:
  return flags.FLAGS.is_parsed() and flags.FLAGS.verbosity >= 1


def run(config, workdir: str, mode: str = "train") -> int:
  """Runs `mode` and returns the exit status; errors are printed as one line.

  0: done (also after SIGTERM); 1: the training diverged, or an internal error;
  2: a bad config, data folder, checkpoint or workdir.
  """
  # Imported here so that --help answers at once, and so that a multi-host run can
  # initialise jax.distributed before anything else touches JAX.
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  try:
    from salx.app import config as config_lib  # pylint: disable=g-import-not-at-top
    config_lib.preflight(config, workdir, mode)   # Before TF, devices or the workdir.
    cli.import_quietly("tensorflow")   # The data feed's; muted start-up lines.
    from salx.core import sharding  # pylint: disable=g-import-not-at-top
    sharding.initialize_distributed(force=bool(config.get("distributed", False)))
    from salx.app import evaluation  # pylint: disable=g-import-not-at-top
    from salx.app import trainer  # pylint: disable=g-import-not-at-top
    if mode == "evaluate":
      evaluation.evaluate_checkpoint(config, workdir)
      if (flags.FLAGS.is_parsed() and _PLOTS.value
          and os.path.isfile(os.path.join(workdir, "metrics.json"))):
        from salx.app import pictures  # pylint: disable=g-import-not-at-top
        files = pictures.draw_pictures(workdir, os.path.join(workdir, "plots"))
        print(f"pictures: {files[-1]}", flush=True)
      return 0
    result = trainer.train_and_evaluate(config, workdir)
  except KeyboardInterrupt:   # Ctrl-C before the training loop watches for it.
    return cli.fail("interrupted before training started; run the same command to "
                    "start again (any checkpoint in the workdir is kept)",
                    EXIT_INTERRUPTED)
  except Exception as e:  # pylint: disable=broad-except
    if _verbose():
      traceback.print_exc()
    code, text = runtime.describe(e)
    if code == EXIT_DIVERGED and not runtime.is_known(e):
      text += " (run with --verbosity=1 for the traceback)"
    return cli.fail(text, code)
  if result.status == "preempted":
    print(f"salx: SIGTERM: checkpointed step {result.step} in {workdir}; run the same "
          "command to resume.", file=sys.stderr, flush=True)
  if result.status == "interrupted":
    return cli.fail(f"interrupted: checkpointed step {result.step} in {workdir}; run "
                    "the same command to resume", EXIT_INTERRUPTED)
  return 0


def _quiet_libraries(record) -> bool:
  """Drops the INFO chatter of Orbax and JAX's backend discovery from the console."""
  noisy = (f"{os.sep}orbax{os.sep}" in record.pathname
           or record.pathname.endswith("xla_bridge.py"))
  return record.levelno >= std_logging.WARNING or not noisy


def main(argv):
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  runtime.show_library_logs(_verbose())
  runtime.quiet_late_callbacks()
  logging.get_absl_handler().addFilter(_quiet_libraries)
  if len(argv) > 1:
    sys.exit(cli.fail(f"unexpected arguments: {argv[1:]}"))
  try:
    config = _CONFIG.value
    if config is not None:
      list(config.keys())   # A config file that failed to load raises here.
  except Exception as e:  # pylint: disable=broad-except
    reason = str(e).strip().splitlines()[-1].strip()
    sys.exit(cli.fail(f"cannot load the config file: {reason}"))
  if config is None:
    sys.exit(cli.fail("--config is required (e.g. --config=configs/synthetic.py)"))
  if _SHOW_CONFIG.value:
    print(config, flush=True)
    sys.exit(0)
  if not _WORKDIR.value:
    sys.exit(cli.fail("--workdir is required: the folder of the run (checkpoints, "
                      "logs, reports)"))
  code = run(config, _WORKDIR.value, _MODE.value)
  sys.stdout.flush()
  sys.stderr.flush()
  if code:
    # Background threads (input prefetch, async checkpointing, writers) must not
    # keep a failed run alive: everything worth keeping is already on disk.
    std_logging.shutdown()
    os._exit(code)  # pylint: disable=protected-access
  sys.exit(0)


if __name__ == "__main__":
  cli.run(main)
