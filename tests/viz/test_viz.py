"""Pictures of a run: timelines (files and TensorBoard pixels), curves, AP bars and
the index page, drawn from arrays (tests/app/test_pictures.py: the run's arrays and the
command)."""

import html.parser
import io
import os
import pathlib
import sys
from urllib import parse

import matplotlib.colors
from matplotlib import image as mpimg
import numpy as np
import pytest

from salx.postprocess.detections import Detections
from salx.viz import ap_bars
from salx.viz import canvas
from salx.viz import training_curves
from salx.viz import index_page
from salx.viz import run_pictures
from salx.viz import timeline
from tests.viz.html_links import check_links

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


def _as_detections(detections, video_names=("video_test_0000004",), video=0):
  """The mapping `detections` as the postprocess tier's Detections of one video."""
  d = {k: np.asarray(v) for k, v in detections.items()}
  return Detections(tuple(video_names), tuple(CLASSES),
                    np.full(d["label"].size, video, np.int64), d["label"].astype(np.int64),
                    d["score"], d["start"].astype(np.float64), d["end"].astype(np.float64))


def test_a_videos_detections_as_the_postprocess_type_draw_the_same(tmp_path):
  args = timeline_args(t=110, gt=HAND_GT, detections=HAND_DETECTIONS)
  two = Detections.concatenate([_as_detections(HAND_DETECTIONS, ("other",)),
                                _as_detections(HAND_DETECTIONS)])
  mine = two.take(two.video == 1)
  drawn = timeline.draw_timeline(str(tmp_path / "d.png"), **dict(args, detections=mine))
  assert (drawn["detection_bars"], drawn["tp"], drawn["fp"]) == (7, 2, 5)
  with pytest.raises(ValueError, match="draw_timeline: detections hold several videos"):
    timeline.draw_timeline(str(tmp_path / "x.png"), **dict(args, detections=two))
  with pytest.raises(ValueError, match="draw_timeline: detections are over other class"):
    timeline.draw_timeline(str(tmp_path / "x.png"), **dict(
        args, class_names=CLASSES[:2] + ["other"], detections=mine))


def test_timeline_pixels_are_the_png_file(tmp_path):
  args = timeline_args(pseudo_label=np.ones(40), mask=np.linspace(0, 1, 40))
  pixels = timeline.render_timeline_array(**args, width_px=800)
  info = timeline.draw_timeline(str(tmp_path / "v.png"), **args, width_px=800)
  assert pixels.dtype == np.uint8 and pixels.shape == (info["size_px"][1], 800, 3)
  png = mpimg.imread(str(tmp_path / "v.png"))[..., :3]
  np.testing.assert_array_equal(pixels, np.round(png * 255).astype(np.uint8))
  assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20   # more than a blank page
  with pytest.raises(ValueError, match="render_timeline_array: cas"):
    timeline.render_timeline_array(**timeline_args(cas=np.zeros((40, 2))))


def test_timeline_images_for_tensorboard():
  per_video = [dict(timeline_args(seed=i), video=name)
               for i, name in enumerate(["v1", "v2"])]
  images = run_pictures.timeline_images(per_video, top_per_class=3, width_px=640)
  assert list(images) == ["timeline/v1", "timeline/v2"]
  for image in images.values():
    assert image.dtype == np.uint8 and image.ndim == 4
    assert image.shape[0] == 1 and image.shape[2:] == (640, 3)


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
  grid, mean, std = training_curves.mean_band([
      (np.array([0.0, 10.0, 20.0]), np.array([1.0, 2.0, 3.0])),
      (np.array([5.0, 10.0, 25.0]), np.array([2.0, 4.0, 6.0]))])
  np.testing.assert_allclose(grid, [5.0, 10.0, 20.0])
  np.testing.assert_allclose(mean, [1.75, 3.0, (3.0 + 4.0 + 4.0 / 3.0) / 2])
  # The sample std of two values: |a - b| / sqrt(2).
  np.testing.assert_allclose(std, np.array([0.5, 2.0, 4.0 + 4.0 / 3.0 - 3.0]) / np.sqrt(2))


def test_curves_of_several_members_with_bands_and_selected_steps(tmp_path):
  members = [_member("seed 0", [10, 20, 30], [3.0, 2.0, 1.5], [0.2, 0.5, 0.4]),
             _member("seed 1", [10, 20, 30], [3.2, 2.5, 1.0], [0.1, 0.3, 0.6]),
             _member("seed 2", [10, 20, 30], [3.1, 2.2, 1.2], [0.3, 0.3, 0.3],
                     selected=10)]
  losses = training_curves.draw_losses(str(tmp_path / "losses.png"), members, width_px=900)
  assert losses["terms"] == ["loss", "mil", "bg"]
  assert losses["member_lines"] == 3 * 3
  assert losses["bands"] == 3
  assert losses["selected_marks"] == 3 * 3
  assert _png_size(tmp_path / "losses.png") == losses["size_px"]

  maps = training_curves.draw_map(str(tmp_path / "map.png"), members)
  assert maps["selected_steps"] == [20.0, 30.0, 10.0]
  assert (maps["member_lines"], maps["bands"], maps["selected_marks"]) == (3, 1, 3)
  assert _png_size(tmp_path / "map.png") == maps["size_px"] == (900, 420)
  one = training_curves.draw_map(str(tmp_path / "one.png"), members[2:])   # no band
  assert (one["bands"], one["selected_steps"]) == (0, [10.0])


class _Figures:
  """Keeps every figure `canvas.save` writes, by file name."""

  def __init__(self, monkeypatch):
    self.by_name = {}
    real_save = canvas.save

    def save(fig, path):
      self.by_name[os.path.basename(path)] = fig
      return real_save(fig, path)

    monkeypatch.setattr(canvas, "save", save)


def test_map_starts_at_the_untrained_point_on_a_0_to_100_percent_axis(tmp_path,
                                                                       monkeypatch):
  figures = _Figures(monkeypatch)
  members = [dict(_member("seed 0", [50, 100], [2.0, 1.0], [0.62, 0.65]),
                  untrained={"step": 0, "average_mAP": 0.001}),
             _member("seed 1", [50, 100], [2.0, 1.0], [0.60, 0.61])]
  info = training_curves.draw_map(str(tmp_path / "map.png"), members)
  (ax,) = figures.by_name["map.png"].axes
  assert ax.get_ylim() == (0.0, 100.0) == info["ylim"]   # Not zoomed onto 60-65 %.
  lines = [a for a in ax.lines if a.get_gid() == training_curves.MEMBER_GID]
  np.testing.assert_allclose(lines[0].get_xydata(), [[0, 0.1], [50, 62], [100, 65]])
  np.testing.assert_allclose(lines[1].get_xydata(), [[50, 60], [100, 61]])
  assert info["first_steps"] == [0.0, 50.0]
  assert info["selected_steps"] == [100.0, 100.0]   # The untrained is never selected.
  assert "untrained" in ax.get_title(loc="left")
  # An evaluation at step 0 already in the history is not drawn twice.
  again = [dict(members[0], eval=[{"step": 0, "average_mAP": 0.002}]
                + members[0]["eval"])]
  training_curves.draw_map(str(tmp_path / "again.png"), again)
  (ax,) = figures.by_name["again.png"].axes
  line = next(a for a in ax.lines if a.get_gid() == training_curves.MEMBER_GID)
  np.testing.assert_allclose(line.get_xdata(), [0, 50, 100])
  np.testing.assert_allclose(line.get_ydata()[0], 0.2)
  with pytest.raises(ValueError, match=r"members\[0\].untrained"):
    training_curves.draw_map(str(tmp_path / "x.png"), [dict(members[0], untrained=[0.1])])


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


def _ap_record(step, ap_at_05):
  """A record whose per-class AP is `ap_at_05[class]` at every tIoU."""
  th = [0.3, 0.5, 0.7]
  per_class = {c: [v] * 3 for c, v in ap_at_05.items()}
  return {"step": step, "tiou_thresholds": th, "per_class_AP": per_class,
          "mAP": [float(np.mean(list(ap_at_05.values())))] * 3}


def _drawn_rows(ax, color):
  """(row's tick label, bar width) of the bars of `color`, top to bottom, as drawn."""
  bars = sorted((p for p in ax.patches if p.get_gid() == ap_bars.CLASS_GID
                 and matplotlib.colors.same_color(p.get_facecolor(), color)),
                key=lambda p: p.get_y())
  ticks = np.asarray(ax.get_yticks())
  labels = [label.get_text() for label in ax.get_yticklabels()]
  rows = [int(np.argmin(np.abs(ticks - (p.get_y() + p.get_height() / 2))))
          for p in bars]
  return [(labels[r], round(p.get_width(), 6)) for r, p in zip(rows, bars)]


def test_per_class_ap_is_sorted_by_the_selected_steps_ap_then_by_name(tmp_path,
                                                                      monkeypatch):
  figures = _Figures(monkeypatch)
  selected = _ap_record(50, {"kick": 0.2, "Bowl": 0.5, "dive": 0.9, "Archery": 0.5,
                             "climb": 0.0})
  last = _ap_record(300, {"kick": 0.8, "Bowl": 0.1, "dive": 0.3, "Archery": 0.2,
                          "climb": 0.6, "extra": 1.0})
  info = ap_bars.draw_ap_bars(str(tmp_path / "ap.png"), last=last, selected=selected)
  order = ["dive", "Archery", "Bowl", "kick", "climb", "extra"]   # extra: no AP there
  assert info["classes"] == order
  ax = figures.by_name["ap.png"].axes[0]
  assert ax.get_ylim()[0] > ax.get_ylim()[1]   # Row 0 on top.
  selected_rows = _drawn_rows(ax, "#1f77b4")
  assert [name for name, _ in selected_rows] == order
  widths = [w for _, w in selected_rows]
  assert widths[:5] == [90.0, 50.0, 50.0, 20.0, 0.0] and np.isnan(widths[5])
  assert _drawn_rows(ax, "#7f7f7f") == list(zip(order, [30.0, 20.0, 10.0, 80.0, 60.0,
                                                        100.0]))
  # Only the last step drawn: its AP orders the rows.
  alone = ap_bars.draw_ap_bars(str(tmp_path / "last.png"), last=last, selected=None)
  assert alone["classes"] == ["extra", "kick", "climb", "dive", "Archery", "Bowl"]
  assert [n for n, _ in _drawn_rows(figures.by_name["last.png"].axes[0],
                                    "#7f7f7f")] == alone["classes"]


# ---------------------------------------------------------------------------
# The page.


class _Thumbnails(html.parser.HTMLParser):
  """(link target, image source) of every <img> inside an <a>; images outside one."""

  def __init__(self):
    super().__init__()
    self.href, self.linked, self.unlinked = None, [], []

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == "a":
      self.href = attrs.get("href")
    elif tag == "img":
      (self.linked if self.href else self.unlinked).append((self.href, attrs["src"]))

  def handle_endtag(self, tag):
    if tag == "a":
      self.href = None


def thumbnails(folder):
  """(href, src) of every picture of folder/index.html; each is a link to itself."""
  parser = _Thumbnails()
  parser.feed((pathlib.Path(folder) / "index.html").read_text(encoding="utf-8"))
  assert parser.linked and not parser.unlinked
  for href, src in parser.linked:
    assert href == src
  return [(pathlib.Path(folder) / parse.unquote(parse.urlsplit(href).path))
          for href, _ in parser.linked]


def test_index_links_every_picture_worst_video_first(tmp_path):
  (tmp_path / "v").mkdir()
  for name in ("a b.png", "c.png", "d.png", "fig.png"):
    (tmp_path / ("v" if name != "fig.png" else "") / name).write_bytes(b"png")
  videos = [("good", "v/a b.png", 0.9), ("<script>bad</script>", "v/c.png", 0.1),
            ("no ground truth", "v/d.png", None)]
  index_page.write_index(str(tmp_path), table_text="mAP <table> & more",
                         videos=videos, figures=[("curves & co", "fig.png")])
  parser, page = check_links(tmp_path)
  assert "<script>" not in page and "&lt;script&gt;bad" in page
  assert "mAP &lt;table&gt; &amp; more" in page
  order = [t for t in parser.text if t in ("good", "<script>bad</script>",
                                           "no ground truth")]
  assert order == ["<script>bad</script>", "good", "no ground truth"]
  assert [p.name for p in thumbnails(tmp_path)] == ["fig.png", "c.png", "a b.png",
                                                    "d.png"]
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


def test_draw_run_writes_every_picture_and_a_page_that_links_them(tmp_path,
                                                                   monkeypatch, capsys):
  figures = _Figures(monkeypatch)
  history = [_member("seed 0", [10, 20], [2.0, 1.0], [0.3, 0.4])]
  per_video = [dict(timeline_args(seed=i), video=name, extra="ignored")
               for i, name in enumerate(["v/1", "v 1", "v:1"])]
  untrained = dict(_record(0, 0.01), average_mAP=0.004)
  files = run_pictures.draw_run(str(tmp_path / "plots"), per_video=per_video,
                                history=history,
                                records={"last": _record(20, 1.0), "best": None,
                                         "untrained": untrained},
                                table_text="table", top_per_class=3)
  assert len(files) == 3 + 3 + 1 and files[-1].endswith("index.html")
  assert len(set(files)) == len(files)
  for path in files:
    assert os.path.isfile(path), path
  for path in files[:3]:
    assert _png_size(path)[0] == 1600
  check_links(tmp_path / "plots")
  # Every thumbnail is a link to its picture at full size.
  linked = thumbnails(tmp_path / "plots")
  assert sorted(str(p) for p in linked) == sorted(files[:-1])
  for path in linked:
    if path.parent.name == run_pictures.VIDEO_DIR:
      assert _png_size(path)[0] == 1600
  # map.png starts at the untrained record of metrics.json, on a 0-100 % axis.
  (ax,) = figures.by_name["map.png"].axes
  line = next(a for a in ax.lines if a.get_gid() == training_curves.MEMBER_GID)
  np.testing.assert_allclose(line.get_xydata(), [[0, 0.4], [10, 30], [20, 40]])
  assert ax.get_ylim() == (0.0, 100.0)
  assert "untrained" not in history[0]   # The caller's history is left alone.
  assert capsys.readouterr().err == ""   # No bar when stderr is not a terminal.


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_draw_run_counts_the_timelines_on_a_terminal(tmp_path, monkeypatch):
  terminal = _Terminal()
  monkeypatch.setattr(sys, "stderr", terminal)
  per_video = [dict(timeline_args(seed=i), video=f"v{i}") for i in range(3)]
  run_pictures.draw_run(str(tmp_path), per_video=per_video, history=[], records=None,
                        table_text="", width_px=600)
  last = terminal.getvalue().rstrip("\n").split("\r")[-1]
  assert last.startswith("drawing timelines") and "3/3" in last and "100%" in last
