"""The pictures of a trained run: what the viz tier and the collecting may import,
the command's flags and exit codes, and the command on a tiny trained run."""

import ast
import collections
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from salx.postprocess import ground_truth
from salx.postprocess.detections import Detections
from salx.viz import run_pictures
from salx.viz import timeline
from tests.conftest import cli_args, tiny_config
from tests.viz.html_links import check_links

ROOT = pathlib.Path(__file__).resolve().parents[2]
VIZ_ALLOWED = {"numpy", "matplotlib", "salx.postprocess", "salx.core.constants",
               "salx.core.progress_bar", "salx.viz"}


def _imported_names(path):
  """Every module an import statement of `path` names (also inside functions);
  `from salx.x import y` names salx.x.y."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      yield node.module
      if node.module.split(".")[0] == "salx":
        yield from (f"{node.module}.{a.name}" for a in node.names)


def _module_file(name):
  base = ROOT.joinpath(*name.split("."))
  for path in (base.with_suffix(".py"), base / "__init__.py"):
    if path.is_file():
      return path
  return None


def _third_party_closure(*modules, skip=()):
  """Top-level third-party packages that the salx modules, and every salx module
  they import in turn, import (not following the modules in `skip`)."""
  seen, todo, packages = set(skip), list(modules), set()
  while todo:
    name = todo.pop()
    path = _module_file(name)
    if name in seen or path is None:
      continue
    seen.add(name)
    for imported in _imported_names(path):
      top = imported.split(".")[0]
      if top == "salx":
        todo.append(imported)
      elif top not in sys.stdlib_module_names and top != "__future__":
        packages.add(top)
  return packages


def test_viz_imports_no_tensorflow_and_no_jax():
  for path in sorted((ROOT / "salx" / "viz").glob("*.py")):
    for name in _imported_names(path):
      top = name.split(".")[0]
      allowed = top in sys.stdlib_module_names or top == "__future__" or any(
          name == a or name.startswith(a + ".") or a.startswith(name + ".")
          for a in VIZ_ALLOWED)
      assert allowed, f"{path.name} imports {name}"


@pytest.mark.slow
def test_training_and_collecting_import_no_matplotlib():
  """salx's own imports: TensorFlow's Keras may load matplotlib where installed.
  The trainer imports salx.app.pictures inside the run, when config.timeline_videos
  asks for pictures, and salx.app.pictures reaches salx.viz (matplotlib) only
  inside the functions that draw."""
  def top_level(path):
    tree = ast.parse(path.read_text())
    return {n for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
            for n in ([node.module] if isinstance(node, ast.ImportFrom) else [])
            + [a.name for a in node.names]}

  assert "pictures" not in top_level(ROOT / "salx" / "app" / "trainer.py")
  assert not {n for n in top_level(ROOT / "salx" / "app" / "pictures.py")
              if n.startswith("salx.viz") or n == "run_pictures"}
  for module in ("salx.app.trainer", "salx.main", "salx.app.evaluation"):
    packages = _third_party_closure(module, skip={"salx.app.pictures"})
    assert "jax" in packages, (module, packages)   # the closure is followed
    assert "matplotlib" not in packages, module
  assert "matplotlib" in _third_party_closure("salx.viz.run_pictures")


def _command(*args):
  return subprocess.run([sys.executable, "-m", "salx.visualize", *args], cwd=ROOT,
                        capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_help_answers_and_exits_zero():
  out = _command("--help")
  assert out.returncode == 0
  for flag in ("--workdir", "--split", "--video", "--top_per_class", "--score_threshold"):
    assert flag in out.stdout


@pytest.mark.parametrize("args, named", [
    (("--workdir=/tmp/x", "--no_such_flag"), "no_such_flag"),
    (("--workdir=/tmp/x", "--split=validation"), "split"),
    ((), "workdir"),
])
def test_a_bad_flag_exits_2_with_one_line(args, named):
  out = _command(*args)
  assert out.returncode == 2
  err = out.stderr.strip().splitlines()
  assert len(err) == 1 and named in err[0] and "Traceback" not in out.stderr


def test_a_workdir_without_a_run_exits_2_with_one_line(tmp_path, capsys):
  from salx import visualize
  assert visualize.run(str(tmp_path), str(tmp_path / "plots"), "test", None, 10,
                       None) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "metrics.json" in err[0] and "no finished run" in err[0]


@pytest.mark.slow
def test_pictures_of_a_tiny_trained_run(tmp_path, capsys, compilation_cache):
  """Ten steps of the tiny synthetic run, then its pictures: the training split's
  arrays from `collect`, and the command on one test video."""
  del compilation_cache   # Lets the second model forward reuse the first's executable.
  from salx import visualize
  from salx.app import data
  from salx.app import pictures
  from salx.app import trainer
  workdir = tmp_path / "run"
  config = tiny_config(tmp_path / "data", num_steps=10, eval_every=10,
                       checkpoint_every=10, eval_untrained=False)
  trainer.train_and_evaluate(config, str(workdir))

  collected = pictures.collect(str(workdir), "train", None)
  video = collected["per_video"][0]
  assert len(collected["per_video"]) == 12
  assert video["pseudo_label"].shape == video["mask"].shape == video["action_flow"].shape
  assert set(np.unique(video["pseudo_label"])) <= {0.0, 1.0}
  assert [r["step"] for r in collected["history"][0]["train"]] == [5, 10]
  files = run_pictures.draw_run(str(tmp_path / "train_plots"),
                                **dict(collected, per_video=[video]))
  info = timeline.draw_timeline(str(tmp_path / "again.png"),
                                **{k: video[k] for k in run_pictures.TIMELINE_FIELDS})
  assert info["gt_bars"] == len(video["gt"])
  assert info["detection_bars"] == len(timeline.shown_detections(
      video["detections"].label, video["detections"].score))
  assert [os.path.basename(f) for f in files] == [
      f"{video['video']}.png", "losses.png", "map.png", "ap_bars.png", "index.html"]
  check_links(tmp_path / "train_plots")

  with pytest.raises(ValueError, match="is not in the test split"):
    pictures.collect(str(workdir), "test", "no_such_video")
  # A test video's detections are those the run evaluated at its best step.
  source = data.open_data(config)
  test_video = source.video_names("test")[0]
  (shown,) = pictures.collect(str(workdir), "test", test_video)["per_video"]
  saved = Detections.from_json(str(workdir / "predictions_best.json"),
                               shown["class_names"])
  saved = saved.take(saved.video == saved.video_names.index(test_video))
  evaluated = [shown["class_names"].index(c) for c in ground_truth.load_ground_truth(
      source.ground_truth(), "test").class_names]
  mine = shown["detections"].take(np.isin(shown["detections"].label, evaluated))
  assert len(saved) and len(mine) == len(saved)
  np.testing.assert_array_equal(mine.label, saved.label)
  for field in ("score", "start", "end"):
    np.testing.assert_allclose(getattr(mine, field), getattr(saved, field), rtol=1e-5)
  capsys.readouterr()
  assert visualize.run(str(workdir), str(workdir / "plots"), "test", test_video, 3,
                       None) == 0
  assert "open" in capsys.readouterr().out

  check_links(workdir / "plots")
  assert [p.name for p in (workdir / "plots" / "videos").glob("*.png")] == [
      f"{test_video}.png"]

  # --mode=evaluate scores the best checkpoint and draws the same pictures.
  (workdir / "plots" / "index.html").unlink()
  proc = subprocess.run(
      cli_args(workdir, tmp_path / "data", num_steps=10, eval_every=10,
               checkpoint_every=10, eval_untrained=False) + ["--mode=evaluate"],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "best checkpoint" in proc.stdout
  check_links(workdir / "plots")
  assert len(list((workdir / "plots" / "videos").glob("*.png"))) == 6


@pytest.mark.slow
def test_a_run_writes_timelines_to_tensorboard_when_asked(tmp_path, compilation_cache):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from salx.app import trainer  # pylint: disable=g-import-not-at-top
  config = tiny_config(tmp_path / "data", num_steps=10, eval_every=10, timeline_videos=2)
  trainer.train_and_evaluate(config, str(tmp_path / "run"))
  tags = collections.Counter()
  for path in (tmp_path / "run").glob("events.out.tfevents*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        if value.tag.startswith("timeline/"):
          tags[value.tag] += 1
  assert len(tags) == 2 and set(tags.values()) == {2}   # Untrained and step 10.
