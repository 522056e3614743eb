"""Hostile files, each read by the command that reads it, in a subprocess: one line
on stderr naming the file, exit 2, bounded peak memory, no file created.

The files and commands are the 'refused' drills of experiments/drills.py: torch
checkpoints (zip and legacy) whose pickle shares one list ten times ten levels
deep, a W-TALC videoname.npy whose repr is 10^10 characters, a restricted-unpickler
refusal of a shape with such a repr, '../' video names in a split file and in
gt.json, an empty split file, a data dir that is a regular file, and JSON nested
100000 levels deep (gt.json of a data folder, and the ground truth and
predictions of `python -m salx.evaluate`). Before the bounded readers, the torch
files took 4 GB and minutes, the W-TALC files 1.5 to 1.9 GB, the '../' names
passed the validator, and deep JSON printed a RecursionError traceback.
"""

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _drills():
  spec = importlib.util.spec_from_file_location("salx_drills",
                                                ROOT / "experiments" / "drills.py")
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # For its dataclasses.
  spec.loader.exec_module(module)
  return module


DRILLS = _drills()
REFUSED = [d for d in DRILLS.DRILLS if d.expect == "refused"]
# Well under what the unbounded readers needed (1.5 GB to more than 4 GB).
MAX_RSS_MB = 600


def test_the_drills_cover_every_hostile_file_of_the_issue():
  names = {d.name for d in REFUSED}
  assert {"torch_zip_shared_lists", "torch_legacy_shared_lists",
          "wtalc_videoname_huge_repr", "npy_refusal_huge_shape", "split_name_dotdot",
          "empty_split_file", "data_dir_regular_file", "deep_json_evaluate_ground_truth",
          "deep_json_evaluate_predictions", "deep_json_data_folder_gt"} <= names


def test_the_hostile_files_are_tiny(tmp_path):
  sizes = {
      "torch zip": pathlib.Path(DRILLS.torch_zip_file(
          str(tmp_path / "z.pth"), b"\x80\x02" + DRILLS.shared_lists_pickle() + b".")),
      "torch legacy": pathlib.Path(DRILLS.torch_legacy_file(
          str(tmp_path / "l.pth"), b"\x80\x02" + DRILLS.shared_lists_pickle() + b".")),
      "huge shape": pathlib.Path(DRILLS.npy_with_pickle(
          str(tmp_path / "s.npy"), DRILLS.huge_shape_pickle())),
  }
  for what, path in sizes.items():
    assert path.stat().st_size < 1024, what


@pytest.mark.slow
@pytest.mark.parametrize("drill", REFUSED, ids=[d.name for d in REFUSED])
def test_a_hostile_file_is_one_line_exit_2_bounded_memory_no_side_effect(tmp_path, drill):
  setup, outcome, wrong = DRILLS.run_drill(drill, str(tmp_path / drill.name))
  assert not outcome.timed_out, f"{drill.name}: killed after {DRILLS.TIMEOUT_S} s"
  assert outcome.exit_code == 2, (outcome.exit_code, outcome.stderr[-2000:])
  assert len(outcome.stderr_lines) == 1, outcome.stderr[-2000:]
  assert "Traceback" not in outcome.stderr
  assert setup.names in outcome.stderr_lines[0]
  assert len(outcome.stderr_lines[0]) < 2000
  assert outcome.peak_rss_mb < MAX_RSS_MB, outcome.peak_rss_mb
  assert outcome.created == []
  assert outcome.stdout == ""
  assert wrong == []
