"""W-TALC reader faults: a damaged feature pickle is read and reported once; every
annotation value is type-checked, with the file, the video and the field named."""

import os

import numpy as np
import pytest

from salx.datasets import check
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets.errors import DataError
from tests.datasets.layout_records import write_tiny

FEATURES = "Thumos14reduced-I3D-JOINTFeatures.npy"
ANNOTATIONS = "Thumos14reduced-Annotations"


@pytest.fixture
def folder(tmp_path):
  """The tiny dataset (v_a, v_b train; v_c test) in the W-TALC layout."""
  write_tiny(tmp_path, "wtalc")
  return tmp_path


def _damage_features(folder):
  path = folder / FEATURES
  content = path.read_bytes()
  path.write_bytes(content[:len(content) // 2])
  return str(path)


def test_a_damaged_feature_pickle_is_read_once(folder, monkeypatch):
  path = _damage_features(folder)
  source = layouts.open_source(folder, "thumos14")
  reads = []
  read_npy = npy.read_npy

  def counting_read_npy(file, *args, **kwargs):
    reads.append(os.fspath(file))
    return read_npy(file, *args, **kwargs)

  monkeypatch.setattr(npy, "read_npy", counting_read_npy)
  errors = []
  for split, name in [("train", "v_a"), ("train", "v_b"), ("test", "v_c"),
                      ("train", "v_a")]:
    for read in (source.load, source.num_snippets):
      with pytest.raises(DataError) as error:
        read(split, name)
      errors.append(error.value)
  assert reads == [path]
  assert all(e is errors[0] for e in errors)
  assert str(errors[0]).startswith(f"{path}: unreadable pickled array")
  assert errors[0].path == path
  assert not source.features_loaded


@pytest.mark.slow
def test_the_validator_reports_a_damaged_feature_pickle_once(folder, capsys):
  path = _damage_features(folder)
  assert check.main(["--dataset", "thumos14", "--data_dir", str(folder)]) == 1
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2, lines
  assert lines[0].startswith(f"{path}: unreadable pickled array")
  assert lines[1].startswith("1 problem in 2 train / 1 test videos")


def _replace(folder, field, index, value):
  """Sets entry `index` of the annotation array `field` to `value`."""
  path = folder / ANNOTATIONS / f"{field}.npy"
  values = list(npy.read_npy(path))
  values[index] = value
  npy.save_npy(path, npy.object_array(values))
  return str(path)


@pytest.mark.parametrize("field,index,value,message", [
    ("segments", 0, [[0.5, "soon"], [3.0, 4.5]],
     "video v_a: segments[0] [0.5, 'soon'] is not a pair of finite numbers"),
    ("segments", 1, [[1.0, None]], "video v_b: segments[0] [1.0, None] is not a pair"),
    ("segments", 1, [[1.0, 2.0, 3.0]], "video v_b: segments[0] [1.0, 2.0, 3.0] is not"),
    ("segments", 1, [2.5], "video v_b: segments[0] 2.5 is not a pair"),
    ("segments", 1, [[1.0, float("inf")]], "video v_b: segments[0] [1.0, inf] is not"),
    ("segments", 1, [[True, 2.0]], "video v_b: segments[0] [True, 2.0] is not a pair"),
    ("segments", 1, "1.0 3.0", "video v_b: segments '1.0 3.0' is not a list"),
    ("labels", 0, ["Jump", 7], "video v_a: labels[1] 7 is not a string"),
    ("labels", 1, "Run", "video v_b: labels 'Run' is not a list"),
    ("labels_all", 1, [None], "video v_b: labels_all[0] None is not a string"),
    ("subset", 2, 3.0, "video v_c: subset 3.0 is not a string"),
    ("duration", 0, "8.0", "video v_a: duration '8.0' is not a number"),
    ("duration", 0, float("inf"), "video v_a: duration inf is not finite"),
    ("videoname", 1, 12, "entry 1: videoname 12 is not a string"),
    ("classlist", 0, b"\xff", "classlist[0] b'\\xff' is not UTF-8 text"),
])
def test_a_mistyped_annotation_value_names_file_video_and_field(folder, field, index,
                                                                value, message):
  path = _replace(folder, field, index, value)
  with pytest.raises(DataError) as error:
    layouts.open_source(folder, "thumos14")
  assert str(error.value).startswith(f"{path}: {message}")
  assert error.value.path == path


@pytest.mark.slow
def test_a_non_numeric_segment_is_one_problem_line_not_a_traceback(folder, capsys):
  path = _replace(folder, "segments", 1, [[1.0, "three"]])
  assert check.main(["--dataset", "thumos14", "--data_dir", str(folder)]) == 1
  captured = capsys.readouterr()
  assert captured.out.splitlines() == [
      f"{path}: video v_b: segments[0] [1.0, 'three'] is not a pair of finite numbers",
      f"1 problem: {folder} cannot be opened as thumos14"]
  assert captured.err == ""


@pytest.mark.slow
def test_a_crafted_annotation_file_allocates_nothing_and_is_one_problem(folder, capsys):
  # 128 bytes of header announce a billion elements; the file holds a few bytes.
  path = folder / ANNOTATIONS / "labels.npy"
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|O", "fortran_order": False, "shape": (1_000_000_000,)})
    f.write(b"\x80\x02N.")
  assert os.path.getsize(path) < 224
  assert check.main(["--dataset", "thumos14", "--data_dir", str(folder)]) == 1
  first = capsys.readouterr().out.splitlines()[0]
  assert first == (f"{path}: damaged or crafted .npy file: its header declares an "
                   "object array of 1000000000 elements, but only 4 bytes follow the "
                   "header")


def test_an_annotation_array_of_no_entries_axis_is_refused(folder):
  path = folder / ANNOTATIONS / "duration.npy"
  np.save(path, np.float64(3.0))
  with pytest.raises(DataError, match="duration.npy: expected a 1-D array, one entry "
                                      r"per video; got shape \(\)"):
    layouts.open_source(folder, "thumos14")


def test_numeric_segment_arrays_and_nan_durations_are_read(folder):
  _replace(folder, "segments", 0, np.array([[0.5, 2.0], [3.0, 4.5]]))
  _replace(folder, "duration", 0, np.nan)
  record = layouts.open_source(folder, "thumos14").load("train", "v_a")
  np.testing.assert_array_equal(record.segments, [[0.5, 2.0], [3.0, 4.5]])
  assert record.duration is None
