"""The data readers refuse hostile input in one line, in bounded memory, and make
data damage loud: plain video names only, paths that stay in the data folder, W-TALC
values never formatted whole, JSON within size and depth caps, empty splits and a
data dir that is a file refused by the validator, complex features named."""

import json
import os
import time
import tracemalloc
import warnings

import numpy as np
import pytest

from salx import evaluate
from salx.datasets import acmnet_layout
from salx.datasets import check
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import sal_layout
from salx.datasets import source
from salx.datasets import validate
from salx.datasets import wtalc_annotations
from salx.datasets.errors import DataError
from salx.postprocess import json_limits
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import load_ground_truth
from salx.postprocess.inputs import EvalInputError
from tests.datasets.layout_records import write_tiny

ANNOTATIONS = "Thumos14reduced-Annotations"


def _shared_lists(levels=10, fan=10):
  value = []
  for _ in range(levels):
    value = [value] * fan
  return value


def _check(folder, capsys):
  status = check.main(["--dataset", "thumos14", "--data_dir", str(folder)])
  return status, capsys.readouterr()


def _one_line_refusal(folder, capsys, file):
  status, captured = _check(folder, capsys)
  assert status == 2, captured
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"{check.PROG}: error: {file}: "), lines
  return lines[0]


# ---------------------------------------------------------------------------
# Video names and paths.


@pytest.mark.parametrize("name", ["../x", "../../../../etc/passwd", "a/b", "a\\b", "..",
                                  "v..1", "a\x00b", "tab\there"])
def test_a_video_name_that_is_not_plain_is_refused(name):
  with pytest.raises(npy.UnsafeFileError) as error:
    source.check_video_name(name, "split_train.txt", "line 2: ")
  assert str(error.value).startswith("split_train.txt: line 2: video name ")
  assert "is not a plain name" in str(error.value) and "\n" not in str(error.value)
  assert error.value.path == "split_train.txt"


@pytest.mark.parametrize("name", ["v_a", "video_test_0000004", "-Ab3_xY9", "clip.1"])
def test_plain_video_names_pass(name):
  assert source.check_video_name(name, "f") == name


@pytest.mark.parametrize("layout", ["sal", "acmnet"])
def test_a_dotdot_name_in_a_split_file_is_refused_and_reads_nothing_outside(
    tmp_path, layout, capsys):
  data = tmp_path / "data"
  write_tiny(data, layout)
  outside = tmp_path / "outside.npy"
  np.save(outside, np.zeros((4, 2048 if layout == "acmnet" else 1024), np.float32))
  split = data / "split_train.txt"
  split.write_text("v_a\n../../../../outside\n")
  with pytest.raises(npy.UnsafeFileError) as error:
    layouts.open_source(data, "thumos14")
  assert str(error.value).startswith(f"{split}: line 2: video name '../../../../outside'")
  line = _one_line_refusal(data, capsys, split)
  assert "is not a plain name" in line
  problems = validate.check_dataset(str(data), "thumos14")
  assert len(problems) == 1 and problems[0].file == str(split)


def test_a_name_leading_out_of_a_gt_json_is_refused(tmp_path, capsys):
  data = tmp_path / "data"
  write_tiny(data, "acmnet")
  gt = data / "gt.json"
  content = json.loads(gt.read_text())
  content["database"]["../v_a"] = content["database"].pop("v_a")
  gt.write_text(json.dumps(content))
  assert "is not a plain name" in _one_line_refusal(data, capsys, gt)


def test_a_wtalc_video_name_or_url_id_leading_out_is_refused(tmp_path):
  write_tiny(tmp_path, "wtalc")
  path = tmp_path / ANNOTATIONS / "videoname.npy"
  npy.save_npy(path, np.array([b"v_a", b"../v_b", b"v_c"]))
  with pytest.raises(npy.UnsafeFileError, match=r"videoname.npy: entry 1: video name "
                                                r"'../v_b' is not a plain name"):
    layouts.open_source(tmp_path, "thumos14")


def test_feature_paths_stay_in_their_folder(tmp_path):
  assert sal_layout.stream_files(tmp_path, "train", "v_a") == (
      str(tmp_path / "features/train/rgb/v_a.npy"),
      str(tmp_path / "features/train/flow/v_a.npy"))
  assert acmnet_layout.feature_path(tmp_path, "test", "v") == str(tmp_path / "test/v.npy")
  for name in ("../v", "../../x", "a/../../b"):
    with pytest.raises(npy.UnsafeFileError, match="leads outside the folder"):
      sal_layout.stream_files(tmp_path, "train", name)
    with pytest.raises(npy.UnsafeFileError, match="leads outside the folder"):
      acmnet_layout.feature_path(tmp_path, "train", name)


# ---------------------------------------------------------------------------
# W-TALC values and the restricted unpickler: never a whole repr.


def _bounded(fn):
  """Runs fn(); asserts it took little time and memory; returns its DataError."""
  tracemalloc.start()
  start = time.monotonic()
  try:
    with pytest.raises(DataError) as error:
      fn()
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert time.monotonic() - start < 10 and peak < 32 << 20, peak
  message = str(error.value)
  assert "\n" not in message and len(message) < 1000, message[:2000]
  return message


@pytest.mark.parametrize("field", ["text", "entries", "segments", "duration"])
def test_a_wtalc_value_is_never_formatted_whole(field):
  value = _shared_lists()  # Its repr has ~4 * 10^10 characters.
  calls = {
      "text": lambda: wtalc_annotations._text(value, "f.npy", "entry 0: videoname"),
      "entries": lambda: wtalc_annotations._entries({"k": value}, "f.npy", "labels"),
      "segments": lambda: wtalc_annotations._segments([value], "f.npy", "segments"),
      "duration": lambda: wtalc_annotations._duration(value, "f.npy", "duration"),
  }
  message = _bounded(calls[field])
  assert message.startswith("f.npy: ") and "[[[[" in message


def test_the_restricted_unpickler_refuses_a_huge_shape_in_a_short_message(tmp_path):
  unpickler = npy._RestrictedUnpickler(open(os.devnull, "rb"), "labels.npy", 100)
  message = _bounded(lambda: unpickler._array_bytes((_shared_lists(),), np.dtype("f4")))
  assert message.startswith("labels.npy: damaged or crafted pickle: array shape ([[[[")


def test_a_videoname_file_of_shared_lists_is_refused_in_bounded_memory(tmp_path, capsys):
  write_tiny(tmp_path, "wtalc")
  path = tmp_path / ANNOTATIONS / "videoname.npy"
  np.save(path, npy.object_array([_shared_lists(), "v_b", "v_c"]), allow_pickle=True)
  assert path.stat().st_size < 2048
  message = _bounded(lambda: npy.read_npy(path))
  assert message.startswith(f"{path}: damaged or crafted pickle: refusing a shared list")
  assert "refusing a shared list" in _one_line_refusal(tmp_path, capsys, path)


# ---------------------------------------------------------------------------
# The validator: empty splits, a data dir that is a file, complex features.


def test_an_empty_split_file_is_refused_by_the_validator(tmp_path, capsys):
  data = tmp_path / "data"
  write_tiny(data, "sal")
  split = data / "split_test.txt"
  split.write_text("\n")
  line = _one_line_refusal(data, capsys, split)
  assert line.endswith("the test split lists no video")
  assert [p.file for p in validate.check_dataset(str(data), "thumos14")] == [str(split)]


def test_an_empty_wtalc_subset_is_refused(tmp_path, capsys):
  write_tiny(tmp_path, "wtalc")
  path = tmp_path / ANNOTATIONS / "subset.npy"
  npy.save_npy(path, np.array([b"validation"] * 3))
  assert _one_line_refusal(tmp_path, capsys, path).endswith("the test split lists no video")


@pytest.mark.slow
@pytest.mark.parametrize("layout", [[], ["--layout", "sal"]])
def test_a_data_dir_that_is_a_regular_file_is_named_as_such(tmp_path, capsys, layout):
  path = tmp_path / "data"
  path.write_text("not a folder\n")
  assert check.main(["--dataset", "thumos14", "--data_dir", str(path)] + layout) == 2
  err = capsys.readouterr().err
  assert f"data directory {path} is not a directory (a regular file)" in err
  assert "does not exist" not in err and len(err.strip().splitlines()) == 1
  with pytest.raises(DataError, match="is not a directory"):
    layouts.open_source(path, "thumos14")


@pytest.mark.parametrize("layout,split,name", [("sal", "test", "v_c"),
                                               ("acmnet", "train", "v_a"),
                                               ("wtalc", "train", "v_b")])
def test_complex_features_are_named_per_video_without_a_warning(tmp_path, capsys, layout,
                                                                split, name):
  write_tiny(tmp_path, layout)
  source_ = layouts.open_source(tmp_path, "thumos14")
  if layout == "wtalc":
    path = source_.feature_file(split, name)
    features = npy.read_npy(path)
    features[1] = features[1].astype(np.complex64)
    np.save(path, features, allow_pickle=True)
  else:
    path = source_.feature_file(split, name)
    np.save(path, np.load(path).astype(np.complex128) * 1j)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    status, captured = _check(tmp_path, capsys)
  assert status == 1
  assert f"{path}: video {name} has complex-valued features (complex" in captured.out
  with pytest.raises(DataError, match=f"video {name} has complex-valued features"):
    layouts.open_source(tmp_path, "thumos14").load(split, name)


def test_non_finite_features_are_named_per_video_and_file(tmp_path, capsys):
  write_tiny(tmp_path, "sal")
  flow = tmp_path / "features/train/flow/v_b.npy"
  features = np.load(flow)
  features[0, 0], features[1, 1] = np.nan, np.inf
  np.save(flow, features)
  status, captured = _check(tmp_path, capsys)
  assert status == 1
  assert f"{flow}: video v_b has 1 NaN and 1 infinite feature values" in captured.out


# ---------------------------------------------------------------------------
# JSON within caps.


def _deep(levels=100_000, key="database"):
  return '{"%s": %s%s}' % (key, "[" * levels, "]" * levels)


@pytest.mark.parametrize("text,depth", [
    ("5", 0), ("[]", 1), ('{"a": [1, {"b": []}]}', 4), ('["[[[[", "]]]"]', 1),
    ('["\\"[[[["]', 1), ('{"k\\\\": [[]]}', 3), ("[" * 70 + "]" * 70, 70),
    ('[[]] [[[[[[', 6),
])
def test_nesting_depth_skips_strings_and_needs_no_recursion(text, depth):
  assert json_limits.nesting_depth(text) == depth


def test_deep_json_is_refused_in_one_line(tmp_path):
  path = tmp_path / "deep.json"
  path.write_text(_deep())
  with pytest.raises(json_limits.JsonLimitError) as error:
    json_limits.load_json(path)
  assert str(error.value) == (f"{path}: JSON nested 100001 levels deep, more than the "
                              "limit of 64")
  ok = tmp_path / "ok.json"
  ok.write_text(json.dumps({"a": [[[1]]] * 3, "b": "[[[[[[[[[[" * 20}))
  assert json_limits.load_json(ok)["a"] == [[[1]]] * 3


def test_json_past_the_size_cap_is_not_read(tmp_path):
  path = tmp_path / "big.json"
  path.write_text(json.dumps({"x": "y" * 5000}))
  with pytest.raises(json_limits.JsonLimitError, match=f"^{path}: JSON file larger "
                                                        "than the 1000-byte limit"):
    json_limits.load_json(path, max_bytes=1000)
  assert json_limits.load_json(path, max_bytes=6000)["x"] == "y" * 5000


def test_malformed_json_is_one_line(tmp_path):
  path = tmp_path / "bad.json"
  path.write_bytes(b'{"a": \xff}')
  with pytest.raises(json_limits.JsonInputError, match=f"^{path}: malformed JSON"):
    json_limits.load_json(path)
  with pytest.raises(FileNotFoundError):
    json_limits.load_json(tmp_path / "absent.json")


@pytest.mark.slow
def test_evaluation_loaders_refuse_deep_json(tmp_path, capsys):
  deep_gt = tmp_path / "gt.json"
  deep_gt.write_text(_deep())
  deep_predictions = tmp_path / "predictions.json"
  deep_predictions.write_text(_deep(key="results"))
  with pytest.raises(EvalInputError, match=f"^{deep_gt}: JSON nested 100001 levels"):
    load_ground_truth(deep_gt)
  with pytest.raises(EvalInputError, match=f"^{deep_predictions}: JSON nested"):
    Detections.from_json(deep_predictions)
  assert evaluate.main([f"--ground_truth={deep_gt}",
                        f"--predictions={deep_predictions}"]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and str(deep_gt) in err
  assert "Traceback" not in err and "RecursionError" not in err


def test_a_deep_gt_json_in_a_data_folder_is_refused(tmp_path, capsys):
  write_tiny(tmp_path, "sal")
  gt = tmp_path / "gt.json"
  gt.write_text(_deep())
  with pytest.raises(npy.UnsafeFileError, match="JSON nested 100001 levels"):
    source.read_ground_truth_json(gt)
  assert "JSON nested 100001 levels deep" in _one_line_refusal(tmp_path, capsys, gt)
