"""`python -m salx.datasets.convert`: exact round trips through the three layouts, one
video in memory at a time, W-TALC's array streamed, no half-written output, and the
converted folders train."""

import itertools
import os
import pickle
import tracemalloc

import numpy as np
import pytest

from salx.core.constants import SPLITS
from salx.datasets import convert
from salx.datasets import layout_conversion
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import synthetic
from salx.datasets import validate
from salx.datasets import wtalc_layout
from salx.datasets import wtalc_stream
from salx.datasets.errors import DataError
from tests.conftest import tiny_config

SPEC = dict(num_classes=3, num_train=8, num_test=5, min_length=20, max_length=50)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
  """The same small synthetic THUMOS14-named dataset written in each layout."""
  root = tmp_path_factory.mktemp("originals")
  spec = synthetic.SyntheticSpec(**SPEC)
  return {layout: synthetic.make_synthetic_dataset(root / layout, spec, layout=layout,
                                                   progress=False)
          for layout in layouts.LAYOUTS}


def _content(folder, layout):
  """Everything a folder says: class names, split lists, every record."""
  source = layouts.open_source(folder, "thumos14", layout)
  splits = {s: source.video_names(s) for s in SPLITS}
  records = {name: source.load(s, name) for s in SPLITS for name in splits[s]}
  return source.class_names, splits, records


def _assert_same_content(a, b):
  (classes_a, splits_a, records_a), (classes_b, splits_b, records_b) = a, b
  assert classes_a == classes_b and splits_a == splits_b
  assert list(records_a) == list(records_b)
  for name, ra in records_a.items():
    rb = records_b[name]
    assert ra.features.dtype == rb.features.dtype == np.float32
    np.testing.assert_array_equal(ra.features, rb.features, err_msg=name)
    np.testing.assert_array_equal(ra.labels, rb.labels, err_msg=name)
    np.testing.assert_array_equal(ra.segments, rb.segments, err_msg=name)
    assert ra.segment_labels == rb.segment_labels and ra.duration == rb.duration, name


def _convert(data_dir, out, to, **kwargs):
  return layout_conversion.convert_folder(data_dir, out, dataset="thumos14",
                                          to_layout=to, progress=False, **kwargs)


@pytest.mark.parametrize("first", layouts.LAYOUTS)
def test_a_round_trip_through_all_three_layouts_is_exact(first, originals, tmp_path):
  """From each layout through the other two and back: every array and annotation;
  each folder on the way passes the checker."""
  want = _content(originals[first], first)
  others = [l for l in layouts.LAYOUTS if l != first]
  folder = originals[first]
  for i, layout in enumerate(others + [first]):
    out = tmp_path / f"{i}-{layout}"
    summary = _convert(folder, out, layout)
    assert summary.videos == {"train": 8, "test": 5} and not summary.left_out
    assert layouts.detect_layout(out) == layout
    assert validate.check_dataset(str(out), "thumos14", layout) == []
    _assert_same_content(_content(out, layout), want)
    folder = out
  assert not [p for p in os.listdir(tmp_path) if ".partial-" in p]


def test_a_folder_converted_back_holds_the_same_feature_files(originals, tmp_path):
  _convert(originals["sal"], tmp_path / "w", "wtalc")
  _convert(tmp_path / "w", tmp_path / "back", "sal")
  for split, stream in itertools.product(SPLITS, ("rgb", "flow")):
    folder = os.path.join(originals["sal"], "features", split, stream)
    for name in os.listdir(folder):
      with open(os.path.join(folder, name), "rb") as a, \
          open(tmp_path / "back" / "features" / split / stream / name, "rb") as b:
        assert a.read() == b.read(), name


def test_wtalc_to_wtalc_keeps_the_file_order(originals, tmp_path):
  source = layouts.open_source(originals["wtalc"], "thumos14", "wtalc")
  order = layout_conversion.video_order(source)
  _convert(originals["wtalc"], tmp_path / "w", "wtalc")
  assert layout_conversion.video_order(
      layouts.open_source(tmp_path / "w", "thumos14", "wtalc")) == order


def test_wtalc_is_read_and_written_one_entry_at_a_time(originals, tmp_path,
                                                       monkeypatch):
  """Neither the whole-pickle reader nor the whole-array writer runs."""
  def refuse(*args, **kwargs):
    raise AssertionError("the whole W-TALC array was read or written at once")
  monkeypatch.setattr(wtalc_layout.WtalcSource, "_read_features", refuse)
  monkeypatch.setattr(wtalc_layout, "write_wtalc_layout", refuse)
  monkeypatch.setitem(layouts.WRITERS, "wtalc", refuse)
  _convert(originals["wtalc"], tmp_path / "a", "acmnet")
  _convert(originals["acmnet"], tmp_path / "w", "wtalc")
  _convert(tmp_path / "w", tmp_path / "w2", "wtalc")


def test_the_wtalc_stream_holds_a_few_entries_in_memory(tmp_path):
  count, entry = 40, np.zeros((128, 2048), np.float32)   # 1 MiB each.
  path = tmp_path / "features.npy"
  tracemalloc.start()
  try:
    wtalc_stream.write_object_array(path, count, (entry + i for i in range(count)))
    written = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    seen = [(i, float(a[0, 0])) for i, a in wtalc_stream.iter_object_array(path)]
    read = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert seen == [(i, float(i)) for i in range(count)]
  assert written < 6 * entry.nbytes and read < 6 * entry.nbytes, (written, read)
  back = np.load(path, allow_pickle=True)   # What W-TALC's code reads.
  assert back.shape == (count,) and float(back[7][0, 0]) == 7.0
  assert len(npy.read_npy(path)) == count


def test_the_wtalc_stream_refuses_what_the_reader_refuses(tmp_path):
  path = tmp_path / "evil.npy"
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    f.write(pickle.dumps(os.system, protocol=2))
  with pytest.raises(npy.UnsafeFileError, match="refusing to unpickle"):
    list(wtalc_stream.iter_object_array(path))
  np.save(tmp_path / "plain.npy", np.zeros((3, 2), np.float32))
  with pytest.raises(DataError, match="not W-TALC's 1-D object array"):
    list(wtalc_stream.iter_object_array(tmp_path / "plain.npy"))
  np.save(tmp_path / "lists.npy", npy.object_array([[1.0], [2.0]]), allow_pickle=True)
  with pytest.raises(DataError, match="not a W-TALC feature file"):
    list(wtalc_stream.iter_object_array(tmp_path / "lists.npy"))
  stream = wtalc_stream.iter_object_array(tmp_path / "plain.npy")
  stream.close()   # A reader never started, or stopped early, leaves no thread.


def test_an_existing_output_is_kept_without_overwrite(originals, tmp_path, capsys):
  out = tmp_path / "out"
  out.mkdir()
  (out / "mine.txt").write_text("keep")
  args = ["--dataset=thumos14", "--from=sal", "--to=acmnet",
          f"--data_dir={originals['sal']}", f"--out={out}"]
  assert convert.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
  assert (out / "mine.txt").read_text() == "keep"
  assert convert.main(args + ["--overwrite"]) == 0
  assert "wrote" in capsys.readouterr().out
  assert not (out / "mine.txt").exists() and layouts.detect_layout(out) == "acmnet"
  assert sorted(os.listdir(tmp_path)) == ["out"]   # Nothing staged or retired left.


def test_an_interrupted_conversion_leaves_no_folder_named_out(originals, tmp_path,
                                                              monkeypatch):
  """While it writes, only OUT.partial-* exists; a failure removes it."""
  seen = []
  real = layout_conversion.iter_records

  def records(source):
    for i, record in enumerate(real(source)):
      seen.append(sorted(os.listdir(tmp_path)))
      if i == 3:
        raise KeyboardInterrupt()
      yield record

  monkeypatch.setattr(layout_conversion, "iter_records", records)
  for layout in layouts.LAYOUTS:
    with pytest.raises(KeyboardInterrupt):
      _convert(originals["sal"], tmp_path / "out", layout)
    assert all(len(s) == 1 and s[0].startswith("out.partial-") for s in seen), seen
    assert os.listdir(tmp_path) == []
    seen.clear()


@pytest.mark.parametrize("args, named", [
    (["--from=sal", "--to=wtalc", "--data_dir=x", "--out=y"], "--dataset"),
    (["--dataset=thumos14", "--to=wtalc", "--out=y"], "--data_dir"),
    (["--dataset=thumos14", "--from=sal", "--data_dir=x", "--out=y"], "--to"),
    (["--dataset=thumos14", "--to=tfds", "--data_dir=x", "--out=y"], "to"),
    (["--dataset=thumos14", "--to=sal", "--data_dir=/no/such/folder", "--out=/tmp/y"],
     "/no/such/folder"),
])
def test_bad_flags_and_folders_exit_2_with_one_line(args, named, capsys):
  assert convert.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and named in err[0] and "Traceback" not in err[0]


@pytest.mark.slow
def test_the_output_must_lie_outside_the_data_folder(originals, capsys):
  assert convert.main(["--dataset=thumos14", "--to=acmnet",
                       f"--data_dir={originals['sal']}",
                       f"--out={os.path.join(originals['sal'], 'inside')}"]) == 2
  assert "outside the data folder" in capsys.readouterr().err


@pytest.mark.slow
def test_what_a_layout_cannot_hold_is_named(originals, tmp_path, capsys):
  """A W-TALC video label without an instance has no place in gt.json."""
  w = tmp_path / "w"
  _convert(originals["wtalc"], w, "wtalc")
  _, annotation_dir = wtalc_layout.wtalc_paths(w, "thumos14")
  labels_all = np.load(os.path.join(annotation_dir, "labels_all.npy"), allow_pickle=True)
  first = str(np.load(os.path.join(annotation_dir, "videoname.npy"))[0], "utf-8")
  labels_all[0] = ["action_00", "action_01", "action_02"]
  np.save(os.path.join(annotation_dir, "labels_all.npy"), labels_all, allow_pickle=True)
  assert convert.main(["--dataset=thumos14", f"--data_dir={w}", "--to=sal",
                       f"--out={tmp_path / 's'}"]) == 2
  err = capsys.readouterr().err
  assert f"video {first}" in err and "instances" in err
  assert sorted(os.listdir(tmp_path)) == ["w"]


@pytest.mark.slow
def test_the_converted_folders_train(originals, tmp_path, compilation_cache):
  """A few steps of configs/tiny.py on each converted folder (layout named)."""
  del compilation_cache
  from salx.app import trainer
  folder = originals["sal"]
  for layout in ("wtalc", "acmnet", "sal"):
    out = tmp_path / f"to-{layout}"
    _convert(folder, out, layout)
    folder = out
    config = tiny_config(out, dataset="thumos14", layout=layout, feature_dim=2048,
                         num_steps=2, eval_every=2, eval_start_step=2,
                         checkpoint_every=2, log_every=1, eval_untrained=False)
    result = trainer.train_and_evaluate(config, str(tmp_path / f"run-{layout}"))
    assert result is not None
    assert (tmp_path / f"run-{layout}" / "metrics.json").is_file()
