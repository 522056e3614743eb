"""A torn file in best/ or in the latest checkpoints never blocks a resume: the
damaged folder is moved aside with a warning naming it, and the run goes on from
the newest intact state (salx.app.checkpoints)."""

import json
import subprocess
import sys

import pytest

from salx.app import data
from salx.app import trainer
from tests.conftest import ROOT, cli_args, tiny_config

pytestmark = pytest.mark.slow   # Whole runs.


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, compilation_cache):
  del compilation_cache
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(tiny_config(folder))
  return folder


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
  return trainer.train_and_evaluate(tiny_config(data_dir),
                                  str(tmp_path_factory.mktemp("uninterrupted"))).metrics


def _truncate(path):
  text = path.read_text()
  path.write_text(text[:len(text) // 2])


@pytest.mark.parametrize("torn", ["best/{best}/metrics/metrics",
                                  "best/{best}/record/metadata",
                                  "checkpoints/20/progress/metadata",
                                  "checkpoints/20/_CHECKPOINT_METADATA"])
def test_a_torn_file_is_moved_aside_and_the_run_resumes(torn, data_dir, tmp_path,
                                                        uninterrupted, caplog):
  workdir = tmp_path / "w"
  trainer.train_and_evaluate(tiny_config(data_dir, num_steps=20), str(workdir))
  best = next(p.name for p in (workdir / "best").iterdir() if p.name.isdigit())
  path = workdir / torn.format(best=best)
  _truncate(path)
  resumed = trainer.train_and_evaluate(tiny_config(data_dir), str(workdir))
  assert resumed.metrics == uninterrupted
  folder = path.relative_to(workdir).parts[:2]
  assert (workdir / folder[0] / f"{folder[1]}.damaged").is_dir()   # Kept for the user.
  assert any("is damaged" in r.getMessage() and folder[1] in r.getMessage()
             for r in caplog.records)


def test_evaluate_with_a_torn_best_checkpoint_is_one_line(data_dir, tmp_path):
  workdir = tmp_path / "w"
  trainer.train_and_evaluate(tiny_config(data_dir, num_steps=20), str(workdir))
  best = next(p for p in (workdir / "best").iterdir() if p.name.isdigit())
  _truncate(best / "metrics" / "metrics")
  proc = subprocess.run(cli_args(workdir, data_dir, num_steps=20) + ["--mode=evaluate",
                                                                      "--plots=false"],
                        cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("salx:")]
  assert len(lines) == 1 and "no best checkpoint" in lines[0]
  assert "Traceback" not in proc.stderr and "JSONDecodeError" not in lines[0]
  assert "is damaged" in proc.stderr and str(best) in proc.stderr
