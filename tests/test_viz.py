"""Pictures of a run: timelines (files and TensorBoard pixels), curves, AP bars, the
index page, and the command on a tiny trained run."""

import ast
import html.parser
import os
import pathlib
import subprocess
import sys
from urllib import parse

from matplotlib import image as mpimg
import numpy as np
import pytest

from salx.viz import ap_bars
from salx.viz import curves
from salx.viz import index_page
from salx.viz import run_pictures
from salx.viz import timeline
from tests.test_train import compilation_cache  # noqa: F401  (a fixture)
from tests.test_train import tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ["Diving", "HighJump", "Long <Jump> & \"Co\""]
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def _png_size(path):
  """(width, height) of a PNG as decoded by matplotlib."""
  pixels = mpimg.imread(str(path))
  return pixels.shape[1], pixels.shape[0]


def timeline_args(t=40, seed=0, **overrides):
  """draw_timeline arguments for a tiny video of T = t snippets."""
  rng = np.random.default_rng(seed)
  args = dict(
      video="video_test_0000004", duration_s=t * 0.64, seconds_per_snippet=0.64,
      class_names=CLASSES, gt=[(0, 2.0, 6.0), (0, 10.0, 14.0), (1, 3.0, 9.0)],
      detections={"label": np.array([0] * 12 + [1] * 3),
                  "score": rng.random(15), "start": rng.random(15) * 10,
                  "end": 10 + rng.random(15) * 10},
      cas=rng.random((t, 3)), predicted=np.array([0, 1]),
      action_flow=rng.random(t), action_rgb=rng.random(t), actionness=rng.random(t),
      thresholds=THRESHOLDS)
  args.update(overrides)
  return args


# ---------------------------------------------------------------------------
# Timelines.


def test_timeline_draws_one_bar_per_instance_and_the_shown_detections(tmp_path):
  args = timeline_args()
  info = timeline.draw_timeline(str(tmp_path / "v.png"), **args, width_px=1200)
  assert info["gt_bars"] == 3
  assert info["detection_bars"] == 10 + 3   # 12 of class 0 capped at 10, 3 of class 1
  assert info["tp"] + info["fp"] == info["detection_bars"]
  assert info["lanes"] == ("Diving", "HighJump")
  assert _png_size(tmp_path / "v.png") == info["size_px"] and info["size_px"][0] == 1200

  above = timeline.draw_timeline(str(tmp_path / "s.png"), **args, score_threshold=0.5)
  assert above["detection_bars"] == int(np.sum(args["detections"]["score"] >= 0.5))

  train = timeline.draw_timeline(  # a training video's rows make the picture taller
      str(tmp_path / "t.png"), **args, pseudo_label=(np.arange(40) % 3 == 0) * 1.0,
      mask=np.linspace(0, 1, 40))
  assert train["size_px"][1] > info["size_px"][1]
  assert _png_size(tmp_path / "t.png") == train["size_px"]


# Hand-computed ActivityNet matching at tIoU 0.5. Ground truth: class 0 at [10, 20]
# and [30, 40], class 1 at [50, 60].
HAND_GT = [(0, 10.0, 20.0), (0, 30.0, 40.0), (1, 50.0, 60.0)]
HAND_DETECTIONS = {
    "label": [0, 0, 0, 1, 1, 2, 0],
    "score": [0.9, 0.8, 0.7, 0.95, 0.5, 0.6, 0.85],
    "start": [12.0, 10.0, 31.0, 10.0, 52.0, 50.0, 14.0],
    "end": [22.0, 19.0, 45.0, 20.0, 70.0, 60.0, 35.0],
}
# d0 takes [10, 20] (tIoU 8/12); d6 (tIoU 0.24 and 0.19) and d1 (0.9, but with an
# instance d0 already took) are false positives; d2 takes [30, 40] (9/15); d3 has no
# class-1 instance near it; d4 overlaps [50, 60] by 8/20 = 0.4 only; class 2 has no
# ground truth at all.
HAND_TP = [True, False, True, False, False, False, False]


def test_true_positives_follow_the_greedy_matching_by_score(tmp_path):
  d = {k: np.asarray(v) for k, v in HAND_DETECTIONS.items()}
  g = np.asarray(HAND_GT)
  flags = timeline.match_detections(g[:, 0], g[:, 1], g[:, 2], d["label"], d["score"],
                                    d["start"], d["end"], tiou=0.5)
  assert flags.tolist() == HAND_TP
  loose = timeline.match_detections(g[:, 0], g[:, 1], g[:, 2], d["label"], d["score"],
                                    d["start"], d["end"], tiou=0.3)
  assert loose.tolist() == [True, False, True, False, True, False, False]

  info = timeline.draw_timeline(
      str(tmp_path / "hand.png"), **timeline_args(t=110, gt=HAND_GT,
                                                 detections=HAND_DETECTIONS),
      top_per_class=10)
  assert (info["gt_bars"], info["detection_bars"], info["tp"], info["fp"]) == (3, 7, 2, 5)
  assert info["lanes"] == tuple(CLASSES)


def test_a_detection_takes_its_best_overlapping_instance():
  # The first detection overlaps [5, 15] most (0.9), not the first-listed [0, 10]
  # (0.36); the second then still finds [0, 10].
  flags = timeline.match_detections([0, 0], [0.0, 5.0], [10.0, 15.0], [0, 0],
                                    [0.9, 0.8], [5.0, 0.0], [14.0, 9.0], tiou=0.5)
  assert flags.tolist() == [True, True]


def test_top_per_class_keeps_the_best_scores_of_each_class():
  label = np.array([1, 0, 1, 1, 0])
  score = np.array([0.2, 0.5, 0.9, 0.4, 0.1])
  assert timeline.shown_detections(label, score, top_per_class=2).tolist() == [1, 4, 2, 3]
  assert timeline.shown_detections(label, score, score_threshold=0.3).tolist() == [1, 2, 3]


@pytest.mark.parametrize("override, field", [
    (dict(cas=np.zeros((40, 2))), "cas"),
    (dict(action_rgb=np.zeros(39)), "action_rgb"),
    (dict(gt=[(0, 5.0, 4.0)]), "gt"),
    (dict(gt=[(7, 1.0, 2.0)]), "gt class_index"),
    (dict(predicted=[3]), "predicted"),
    (dict(detections={"label": [0], "score": [0.5], "start": [1.0]}), "detections"),
    (dict(duration_s=0.0), "duration_s"),
])
def test_bad_timeline_input_names_the_field(tmp_path, override, field):
  with pytest.raises(ValueError, match=f"draw_timeline: {field}"):
    timeline.draw_timeline(str(tmp_path / "x.png"), **timeline_args(**override))


# ---------------------------------------------------------------------------
# Curves and AP bars.


def _member(name, steps, losses, maps, selected=None):
  member = {"name": name,
            "train": [{"step": s, "loss": l, "mil": l / 2, "bg": 0.1} for s, l in
                      zip(steps, losses)],
            "eval": [{"step": s, "average_mAP": m} for s, m in zip(steps, maps)]}
  if selected is not None:
    member["selected_step"] = selected
  return member


def test_mean_band_over_the_steps_every_member_covers():
  grid, mean, std = curves.mean_band([
      (np.array([0.0, 10.0, 20.0]), np.array([1.0, 2.0, 3.0])),
      (np.array([5.0, 10.0, 25.0]), np.array([2.0, 4.0, 6.0]))])
  np.testing.assert_allclose(grid, [5.0, 10.0, 20.0])
  np.testing.assert_allclose(mean, [1.75, 3.0, (3.0 + 4.0 + 4.0 / 3.0) / 2])
  np.testing.assert_allclose(std, [0.25, 1.0, (4.0 + 4.0 / 3.0 - 3.0) / 2])


def test_curves_of_several_members_with_bands_and_selected_steps(tmp_path):
  members = [_member("seed 0", [10, 20, 30], [3.0, 2.0, 1.5], [0.2, 0.5, 0.4]),
             _member("seed 1", [10, 20, 30], [3.2, 2.5, 1.0], [0.1, 0.3, 0.6]),
             _member("seed 2", [10, 20, 30], [3.1, 2.2, 1.2], [0.3, 0.3, 0.3],
                     selected=10)]
  losses = curves.draw_losses(str(tmp_path / "losses.png"), members, width_px=900)
  assert losses["terms"] == ["loss", "mil", "bg"]
  assert losses["member_lines"] == 3 * 3
  assert losses["bands"] == 3
  assert losses["selected_marks"] == 3 * 3
  assert _png_size(tmp_path / "losses.png") == losses["size_px"]

  maps = curves.draw_map(str(tmp_path / "map.png"), members)
  assert maps["selected_steps"] == [20.0, 30.0, 10.0]
  assert (maps["member_lines"], maps["bands"], maps["selected_marks"]) == (3, 1, 3)
  assert _png_size(tmp_path / "map.png") == maps["size_px"] == (900, 420)
  one = curves.draw_map(str(tmp_path / "one.png"), members[2:])   # no band
  assert (one["bands"], one["selected_steps"]) == (0, [10.0])


def _record(step, scale):
  th = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
  per_class = {c: [scale * (1 - t) * (i + 1) / 3 for t in th] for i, c in enumerate(CLASSES)}
  return {"step": step, "tiou_thresholds": th, "per_class_AP": per_class,
          "mAP": np.mean(list(per_class.values()), axis=0).tolist(),
          "average_mAP": 0.3}


def test_ap_bars_of_the_last_and_the_selected_step(tmp_path):
  both = ap_bars.draw_ap_bars(str(tmp_path / "ap.png"), last=_record(300, 0.8),
                              selected=_record(50, 1.0))
  assert (both["class_bars"], both["map_bars"]) == (2 * 3, 2 * 7)
  assert _png_size(tmp_path / "ap.png") == both["size_px"]
  one = ap_bars.draw_ap_bars(str(tmp_path / "ap1.png"), last=_record(300, 0.8),
                             selected=None)
  assert (one["class_bars"], one["map_bars"]) == (3, 7)
  with pytest.raises(ValueError, match="lack tIoU 0.95"):
    ap_bars.draw_ap_bars(str(tmp_path / "x.png"), last=_record(1, 1.0), selected=None,
                         tiou=0.95)
  bad = dict(_record(1, 1.0), mAP=[0.1])
  with pytest.raises(ValueError, match="selected: mAP"):
    ap_bars.draw_ap_bars(str(tmp_path / "x.png"), last=None, selected=bad)


# ---------------------------------------------------------------------------
# The page.


class _Links(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.links, self.text = [], []

  def handle_starttag(self, tag, attrs):
    self.links += [v for k, v in attrs if k in ("href", "src")]

  def handle_data(self, data):
    self.text.append(data)


def _check_links(folder):
  """Every href and src of folder/index.html resolves to a file; returns the parser."""
  page = (pathlib.Path(folder) / "index.html").read_text(encoding="utf-8")
  parser = _Links()
  parser.feed(page)
  assert parser.links
  for link in parser.links:
    target = parse.urlsplit(link)
    assert not target.scheme and not target.netloc, link
    assert (pathlib.Path(folder) / parse.unquote(target.path)).is_file(), link
  return parser, page


def test_index_links_every_picture_worst_video_first(tmp_path):
  (tmp_path / "v").mkdir()
  for name in ("a b.png", "c.png", "d.png", "fig.png"):
    (tmp_path / ("v" if name != "fig.png" else "") / name).write_bytes(b"png")
  videos = [("good", "v/a b.png", 0.9), ("<script>bad</script>", "v/c.png", 0.1),
            ("no ground truth", "v/d.png", None)]
  index_page.write_index(str(tmp_path), table_text="mAP <table> & more",
                         videos=videos, figures=[("curves & co", "fig.png")])
  parser, page = _check_links(tmp_path)
  assert "<script>" not in page and "&lt;script&gt;bad" in page
  assert "mAP &lt;table&gt; &amp; more" in page
  order = [t for t in parser.text if t in ("good", "<script>bad</script>",
                                           "no ground truth")]
  assert order == ["<script>bad</script>", "good", "no ground truth"]
  with pytest.raises(ValueError, match=r"videos\[0\] png_relpath"):
    index_page.write_index(str(tmp_path), table_text="", videos=[("x", "/etc/x.png", 0)],
                           figures=[])
  with pytest.raises(ValueError, match=r"figures\[0\] png_relpath"):
    index_page.write_index(str(tmp_path), table_text="", videos=[],
                           figures=[("x", "../x.png")])


def test_video_ap_is_the_protocol_on_one_video():
  gt = [(0, 10.0, 20.0)]
  exact = {"label": [0, 2], "score": [0.5, 0.9], "start": [10.0, 0.0], "end": [20.0, 5.0]}
  assert run_pictures.video_ap(gt, exact, CLASSES, [0.3, 0.5, 0.7]) == 1.0
  # A better-scored false positive of the same class halves the precision at recall 1.
  worse = {"label": [0, 0], "score": [0.5, 0.9], "start": [10.0, 40.0], "end": [20.0, 50.0]}
  assert run_pictures.video_ap(gt, worse, CLASSES, [0.3, 0.5, 0.7]) == pytest.approx(0.5)
  assert run_pictures.video_ap([], exact, CLASSES, [0.5]) is None


def test_draw_run_writes_every_picture_and_a_page_that_links_them(tmp_path):
  history = [_member("seed 0", [10, 20], [2.0, 1.0], [0.3, 0.4])]
  per_video = [dict(timeline_args(seed=i), video=name, extra="ignored")
               for i, name in enumerate(["v/1", "v 1", "v:1"])]
  files = run_pictures.draw_run(str(tmp_path / "plots"), per_video=per_video,
                                history=history,
                                records={"last": _record(20, 1.0), "best": None},
                                table_text="table", top_per_class=3)
  assert len(files) == 3 + 3 + 1 and files[-1].endswith("index.html")
  assert len(set(files)) == len(files)
  for path in files:
    assert os.path.isfile(path), path
  for path in files[:3]:
    assert _png_size(path)[0] == 1600
  _check_links(tmp_path / "plots")


# ---------------------------------------------------------------------------
# Imports and the command.

VIZ_ALLOWED = {"numpy", "matplotlib", "salx.postprocess", "salx.core.variants",
               "salx.core.constants", "salx.viz"}


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


def _third_party_closure(*modules):
  """Top-level third-party packages that the salx modules, and every salx module
  they import in turn, import."""
  seen, todo, packages = set(), list(modules), set()
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


def test_training_and_collecting_import_no_matplotlib():
  """salx's own imports: TensorFlow's Keras may load matplotlib where installed."""
  for module in ("salx.app.train", "salx.main", "salx.app.pictures"):
    packages = _third_party_closure(module)
    assert "jax" in packages, (module, packages)   # the closure is followed
    assert "matplotlib" not in packages, module
  assert "matplotlib" in _third_party_closure("salx.viz.run_pictures")


def test_help_answers_and_exits_zero():
  out = subprocess.run([sys.executable, "-m", "salx.visualize", "--help"], cwd=ROOT,
                       capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert out.returncode == 0
  for flag in ("--workdir", "--split", "--video", "--top_per_class", "--score_threshold"):
    assert flag in out.stdout


def test_a_workdir_without_a_run_exits_2_with_one_line(tmp_path, capsys):
  from salx import visualize
  assert visualize.run(str(tmp_path), str(tmp_path / "plots"), "test", None, 10,
                       None) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "metrics.json" in err[0] and "no finished run" in err[0]


def test_pictures_of_a_tiny_trained_run(tmp_path, capsys, compilation_cache):
  """Ten steps of the tiny synthetic run, then its pictures: the training split's
  arrays from `collect`, and the command on one test video."""
  del compilation_cache   # Lets the second model forward reuse the first's executable.
  from salx import visualize
  from salx.app import data
  from salx.app import pictures
  from salx.app import train
  workdir = tmp_path / "run"
  config = tiny_config(tmp_path / "data", num_steps=10, eval_every=10,
                       checkpoint_every=10, eval_untrained=False)
  train.train_and_evaluate(config, str(workdir))

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
  _check_links(tmp_path / "train_plots")

  with pytest.raises(ValueError, match="is not in the test split"):
    pictures.collect(str(workdir), "test", "no_such_video")
  capsys.readouterr()
  test_video = data.open_data(config).video_names("test")[0]
  assert visualize.run(str(workdir), str(workdir / "plots"), "test", test_video, 3,
                       None) == 0
  assert "open" in capsys.readouterr().out
  _check_links(workdir / "plots")
  assert [p.name for p in (workdir / "plots" / "videos").glob("*.png")] == [
      f"{test_video}.png"]
