r"""salx command line: train and evaluate SAL, or evaluate a run's checkpoint.

    python -m salx.main --config=configs/synthetic.py --workdir=/tmp/salx-demo
    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR
    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR \
        --mode=evaluate --config.eval_checkpoint=latest

Every config field can be overridden as --config.field=value (ml_collections).
Running the same command again in the same workdir resumes where the run stopped.

Exit status: 0 done (also after SIGTERM, which checkpoints and stops; run the
command again to resume), 1 the training diverged (NaN or infinite loss; the last
good checkpoint is kept), 2 a bad config or data folder (nothing was trained).
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app
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
flags.mark_flags_as_required(["workdir"])

EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2


def run(config, workdir: str, mode: str = "train") -> int:
  """Runs `mode` and returns the exit status; errors are printed, not raised."""
  # Imported here so that --help answers at once, and so that a multi-host run can
  # initialise jax.distributed before anything else touches JAX.
  from salx.core import sharding  # pylint: disable=g-import-not-at-top
  if config.get("distributed", False):
    sharding.initialize_distributed(force=True)
  else:
    sharding.initialize_distributed()   # Only when JAX_COORDINATOR_ADDRESS is set.
  from salx.app import run_config  # pylint: disable=g-import-not-at-top
  from salx.app import train  # pylint: disable=g-import-not-at-top
  from salx.datasets.errors import DataError  # pylint: disable=g-import-not-at-top
  try:
    if mode == "evaluate":
      train.evaluate_checkpoint(config, workdir)
      return 0
    result = train.train_and_evaluate(config, workdir)
  except DataError as e:
    print(f"salx: data error: {e}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
  except (run_config.ConfigError, FileNotFoundError) as e:
    print(f"salx: {e}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
  except train.NonFiniteLossError as e:
    print(f"salx: training stopped: {e}", file=sys.stderr, flush=True)
    return EXIT_DIVERGED
  if result.status == "preempted":
    print(f"salx: SIGTERM: checkpointed step {result.step} in {workdir}; run the same "
          "command to resume.", file=sys.stderr, flush=True)
  return 0


def _quiet_libraries(record) -> bool:
  """Drops the INFO chatter of Orbax and JAX's backend discovery from the console."""
  noisy = (f"{os.sep}orbax{os.sep}" in record.pathname
           or record.pathname.endswith("xla_bridge.py"))
  return record.levelno >= std_logging.WARNING or not noisy


def main(argv):
  logging.get_absl_handler().addFilter(_quiet_libraries)
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required (e.g. --config=configs/synthetic.py)")
  logging.info("salx %s in %s with config:\n%s", _MODE.value, _WORKDIR.value, config)
  sys.exit(run(config, _WORKDIR.value, _MODE.value))


if __name__ == "__main__":
  app.run(main)
