"""`python -m salx.detect`: finding and checking feature files, the batching of every
method, the detections of a trained run (those `--mode=evaluate` writes) and of an
authors' checkpoint, and bad files one line each."""

import json
import os
import pathlib

import numpy as np
import pytest

from salx import detect as detect_cmd
from salx.postprocess.detections import Detections
from tests.conftest import fixture_file, tiny_config

ROOT = pathlib.Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------- the files


def _save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  np.save(path, array)
  return str(path)


def test_every_kind_of_bad_file_is_one_skipped_line(tmp_path):
  from salx.app import own_videos
  d = 8
  good = _save(tmp_path / "f" / "good.npy", np.ones((5, d), np.float32))
  _save(tmp_path / "f" / "wide.npy", np.ones((5, d + 2), np.float32))
  _save(tmp_path / "f" / "empty.npy", np.zeros((0, d), np.float32))
  _save(tmp_path / "f" / "flat.npy", np.ones(5, np.float32))
  (tmp_path / "f" / "broken.npy").write_bytes(b"not numpy")
  (tmp_path / "f" / "notes.txt").write_text("not features")
  (tmp_path / "f" / ".hidden").write_text("ignored")
  _save(tmp_path / "s" / "rgb" / "both.npy", np.ones((4, d // 2), np.float32))
  _save(tmp_path / "s" / "flow" / "both.npy", np.ones((4, d // 2), np.float32))
  _save(tmp_path / "s" / "rgb" / "only_rgb.npy", np.ones((4, d // 2), np.float32))
  _save(tmp_path / "s" / "rgb" / "mismatch.npy", np.ones((4, d // 2), np.float32))
  _save(tmp_path / "s" / "flow" / "mismatch.npy", np.ones((3, d // 2), np.float32))
  again = _save(tmp_path / "good.npy", np.ones((6, d), np.float32))

  videos, skipped = own_videos.find_videos(
      [str(tmp_path / "f"), str(tmp_path / "s"), again, str(tmp_path / "nowhere.npy"),
       str(tmp_path / "f" / "notes.txt")], d)
  assert [(v.name, v.num_snippets, len(v.files)) for v in videos] == [
      ("good", 5, 1), ("both", 4, 2)]
  reasons = {os.path.relpath(s.file, tmp_path): s.reason for s in skipped}
  assert len(skipped) == len(reasons) + 1   # notes.txt is named twice: given twice.
  assert "expected [L, 8]" in reasons["f/wide.npy"]
  assert "no snippets" in reasons["f/empty.npy"]
  assert "expected [L, 8]" in reasons["f/flat.npy"]
  assert "not a readable .npy file" in reasons["f/broken.npy"]
  assert reasons["f/notes.txt"] == "not a .npy file"
  assert "no flow file" in reasons["s/rgb/only_rgb.npy"]
  assert "3 flow snippets but 4 RGB" in reasons["s/flow/mismatch.npy"]
  assert "also given by" in reasons["good.npy"] and good in reasons["good.npy"]
  assert reasons["nowhere.npy"] == "no such file or folder"
  assert all("\n" not in str(s) for s in skipped)

  np.testing.assert_array_equal(own_videos.read_features(videos[1], d), np.ones((4, d)))
  nan = np.ones((5, d), np.float32)
  nan[1, 2], nan[3, 0] = np.nan, np.inf
  _save(tmp_path / "f" / "good.npy", nan)
  with pytest.raises(own_videos._Bad, match="1 NaN and 1 infinite"):
    own_videos.read_features(videos[0], d)
  np.save(tmp_path / "f" / "good.npy", np.ones((5, d), np.complex64))
  with pytest.raises(own_videos._Bad, match="not real numbers"):
    own_videos.read_features(videos[0], d)


def test_filtering_keeps_the_best_per_video_and_class():
  from salx.app import own_videos
  score = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.8])
  d = Detections(("a", "b"), ("x", "y"), np.array([0, 0, 0, 0, 1, 1]),
                 np.array([0, 0, 0, 1, 0, 0]), score, np.zeros(6), np.ones(6))
  kept = own_videos.filter_detections(d, top_per_class=2)
  np.testing.assert_array_equal(kept.score, [0.9, 0.5, 0.7, 0.3, 0.8])
  kept = own_videos.filter_detections(d, top_per_class=1, score_threshold=0.6)
  np.testing.assert_array_equal(kept.score, [0.9, 0.7, 0.8])
  assert len(own_videos.filter_detections(d)) == 6


def test_whole_videos_are_grouped_by_length_into_few_shapes():
  from salx.app import own_videos
  assert [own_videos.length_bucket(n) for n in (1, 16, 17, 25, 33, 49, 65, 97, 1000)] \
      == [16, 16, 24, 32, 48, 64, 96, 128, 1024]
  videos = [own_videos.Video(f"v{i}", ("f",), n) for i, n in enumerate((90, 5, 40, 7))]
  plans = own_videos.plan_batches(videos, 2, True, 0)
  assert [([v.name for v in p.videos], p.num_segments) for p in plans] == [
      (["v1", "v3"], 16), (["v2", "v0"], 96)]
  plans = own_videos.plan_batches(videos, 3, False, 32)
  assert [([v.name for v in p.videos], p.num_segments) for p in plans] == [
      (["v0", "v1", "v2"], 32), (["v3"], 32)]


# ------------------------------------------------------------------ the command


@pytest.mark.slow
def test_help_lists_the_flags(capsys):
  assert detect_cmd.main(["--help"]) == 0
  out = capsys.readouterr().out
  for flag in ("--workdir", "--member", "--which", "--checkpoint", "--config",
               "--features", "--out", "--plots", "--fps", "--frames_per_snippet",
               "--top_per_class", "--score_threshold"):
    assert flag in out


@pytest.mark.parametrize("args, named", [
    (["--features=x", "--out=y"], "--workdir"),
    (["--workdir=w", "--checkpoint=c", "--features=x", "--out=y"], "--workdir"),
    (["--checkpoint=c", "--features=x", "--out=y"], "--config"),
    (["--workdir=w", "--out=y"], "--features"),
    (["--workdir=w", "--features=x"], "--out"),
    (["--workdir=w", "--features=x", "--out=y", "--which=first"], "which"),
    (["--checkpoint=c", "--config=/no/such/config.py", "--features=x", "--out=y"],
     "--config"),
])
def test_bad_flags_exit_2_with_one_line(args, named, capsys):
  assert detect_cmd.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and named in err[0] and "Traceback" not in err[0]


@pytest.mark.slow
def test_a_workdir_without_a_run_exits_2(tmp_path, capsys):
  _save(tmp_path / "v.npy", np.ones((4, 64), np.float32))
  assert detect_cmd.main([f"--workdir={tmp_path}", f"--features={tmp_path}",
                          f"--out={tmp_path / 'd.json'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "metrics.json" in err[-1]


# ------------------------------------------------------------ every method


def _tiny_weights(method_name, feature_dim=16):
  """Weights of a fresh tiny model of `method_name` (random params)."""
  import jax
  from configs import base
  from salx.app import own_videos
  from salx.app import config as config_lib
  config = tiny_config("", feature_dim=feature_dim, eval_batch_size=3)
  if method_name != "sal":
    base.use_method(config, method_name, "thumos14")
    config[method_name].attention_hidden = 8
  method = config_lib.method_of(config)
  hp = config_lib.members_of(config)[0].hp
  names = ("a", "b", "c")
  model = config_lib.make_model(config, len(names), method, hp)
  params = method.init_params(model, hp, jax.random.key(1),
                              (1, method.num_segments(hp), feature_dim))
  return own_videos.Weights(config, method, hp, model, jax.device_get(params), names,
                            "random")


def _one_by_one(weights, features, hp):
  """Each video alone through the method's forward (T its own sample) and localize."""
  import jax
  from salx.datasets import sampling as sampling_lib
  method = weights.method
  whole = method.eval_keeps_whole_videos(weights.hp)
  parts = []
  for name, x in features.items():
    t = x.shape[0] if whole else method.num_segments(weights.hp)
    index = sampling_lib.eval_indices(x.shape[0], t, method.eval_sampling(weights.hp),
                                      True if whole else False)
    outputs = jax.device_get(method.eval_outputs(
        weights.model, weights.params, x[index][None], np.ones((1, index.size), bool),
        weights.hp))
    parts.append(method.localize({k: np.asarray(v) for k, v in outputs.items()},
                                 np.array([index.size]), np.array([x.shape[0]]), hp,
                                 video_names=[name],
                                 class_names=weights.class_names).detections)
  return Detections.concatenate(parts)


def _assert_same(got, want):
  assert got.video_names == want.video_names and len(got) == len(want)
  key = lambda d: np.lexsort((d.start, d.label, d.video))   # noqa: E731
  a, b = got.take(key(got)), want.take(key(want))
  np.testing.assert_array_equal(a.video, b.video)
  np.testing.assert_array_equal(a.label, b.label)
  for field in ("score", "start", "end"):
    np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-4,
                               atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method_name", ["sal", "co2net", "delu"])
def test_every_method_detects_as_its_test_time_handling_says(method_name, tmp_path):
  """Batched, padded, masked (and for whole videos grouped by length) detections are
  those of each video alone through the method's forward; --fps sets the seconds."""
  from salx.app import own_videos
  weights = _tiny_weights(method_name)
  rng = np.random.default_rng(0)
  features = {f"v{i}": rng.standard_normal((n, 16)).astype(np.float32)
              for i, n in enumerate((20, 45, 7, 33, 64))}
  for name, x in features.items():
    np.save(tmp_path / f"{name}.npy", x)
  videos, skipped = own_videos.find_videos([str(tmp_path)], 16)
  assert not skipped and len(videos) == 5
  result = own_videos.detect(weights, videos, timelines=True)
  assert not result.skipped and len(result.detections)
  _assert_same(result.detections, _one_by_one(weights, features, weights.hp))
  assert [e["video"] for e in result.entries] == list(features)

  slower = own_videos.detect(weights, videos, fps=12.5, frames_per_snippet=16)
  _assert_same(slower.detections, _one_by_one(
      weights, features, own_videos.with_timing(weights.hp, 12.5, 16)))
  assert slower.detections.end.max() > 1.9 * result.detections.end.max()


# ------------------------------------------------- a trained run, --mode=evaluate


def _matching(got: Detections, saved: Detections):
  """`got` on the classes `saved` holds detections of (the evaluator drops the classes
  without ground truth), compared to `saved`."""
  classes = [got.class_names.index(c) for c in saved.class_names]
  got = got.take(np.isin(got.label, classes))
  want = Detections(saved.video_names, got.class_names, saved.video,
                    np.asarray([got.class_names.index(saved.class_names[i])
                                for i in saved.label], np.int64),
                    saved.score, saved.start, saved.end)
  _assert_same(got, want)


@pytest.mark.slow
def test_detect_reproduces_what_mode_evaluate_wrote(tmp_path, capsys, compilation_cache):
  """Two members of the tiny run: each one's detections on the test features the
  generator wrote are the ones --mode=evaluate wrote for it."""
  del compilation_cache
  from salx.app import evaluation
  from salx.app import trainer
  from tests.viz.html_links import check_links
  workdir, data = tmp_path / "run", tmp_path / "data"
  config = tiny_config(data, num_steps=10, eval_every=10, checkpoint_every=10,
                       eval_untrained=False, num_seeds=2)
  trainer.train_and_evaluate(config, str(workdir))
  evaluation.evaluate_checkpoint(config, str(workdir))
  capsys.readouterr()
  for member in (0, 1):
    saved = Detections.from_json(
        str(workdir / f"predictions_eval_best_member{member}.json"))
    out = tmp_path / f"member{member}.json"
    args = [f"--workdir={workdir}", f"--member={member}",
            f"--features={data / 'features' / 'test'}", f"--out={out}"]
    if member:
      args.append(f"--plots={tmp_path / 'plots'}")
    assert detect_cmd.main(args) == 0, capsys.readouterr().err
    std = capsys.readouterr()
    assert f"written to {out}" in std.out and "best params" in std.out
    assert "skipped" not in std.err
    got = Detections.from_json(str(out), [f"action_{c:02d}" for c in range(3)])
    assert set(got.video_names) == set(saved.video_names) and len(saved)
    _matching(got, saved)
  check_links(tmp_path / "plots")
  assert len(list((tmp_path / "plots" / "videos").glob("*.png"))) == 6

  # --which latest reads the last state; a member the run has not is one line.
  assert detect_cmd.main([f"--workdir={workdir}", "--which=latest",
                          f"--features={data / 'features' / 'test'}",
                          f"--out={tmp_path / 'latest.json'}", "--top_per_class=1",
                          "--score_threshold=0.01"]) == 0
  assert "latest params" in capsys.readouterr().out
  latest = Detections.from_json(str(tmp_path / "latest.json"))
  assert (latest.score >= 0.01).all()
  pairs = list(zip(latest.video, latest.label))
  assert len(pairs) == len(set(pairs))
  assert detect_cmd.main([f"--workdir={workdir}", "--member=2",
                          f"--features={data / 'features' / 'test'}",
                          f"--out={tmp_path / 'x.json'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--member 2" in err[0] and "2 member(s)" in err[0]


# ------------------------------------------------------ an authors' checkpoint


def _checkpoint_flags(path):
  from salx.methods.sal import convert
  dims = convert.official_checkpoint_dims(path)
  assert dims.variant == "thumos14"
  return [f"--checkpoint={path}", f"--config={ROOT / 'configs' / 'thumos.py'}",
          f"--config.feature_dim={dims.feature_dim}",
          f"--config.sal.hidden_dim={dims.hidden_dim}", "--config.sal.num_segments=64",
          "--config.eval_batch_size=2"]


@pytest.mark.slow
def test_an_authors_checkpoint_detects_what_their_outputs_localize_to(tmp_path, capsys):
  """SAL's THUMOS14 file on the fixture's three videos: the detections are the
  localization of the authors' own model outputs; bad files are one line each."""
  from salx.methods.sal import hparams as sal_hparams
  from salx.methods.sal.method import SAL_METHOD
  from salx.datasets.classes import THUMOS14_CLASSES
  path = fixture_file("checkpoints/thumos_CAS_Only.pkl")
  expected = np.load(fixture_file("checkpoints/official_checkpoints_expected.npz"))
  x = expected["thumos/input/x"]
  folder = tmp_path / "features"
  for i in range(len(x)):
    _save(folder / f"video_{i}.npy", x[i])
  _save(folder / "nan.npy", np.full((7, x.shape[2]), np.nan, np.float32))
  _save(folder / "wide.npy", np.zeros((7, x.shape[2] + 1), np.float32))
  (folder / "readme.txt").write_text("x")
  out = tmp_path / "d.json"
  assert detect_cmd.main(_checkpoint_flags(path) + [
      f"--features={folder}", f"--out={out}"]) == 0
  std = capsys.readouterr()
  err = std.err.strip().splitlines()
  assert len(err) == 3 and all(line.startswith("python -m salx.detect: skipped ")
                               for line in err)
  for name in (f"nan.npy: {7 * x.shape[2]} NaN", "wide.npy: features of shape", "readme.txt: not a .npy"):
    assert sum(name in line for line in err) == 1, (name, err)
  assert "(3 files skipped)" in std.out and "official checkpoint" in std.out

  got = Detections.from_json(str(out), THUMOS14_CLASSES)
  outputs = {"cas": expected["thumos/out/cas"],
             "action_flow": expected["thumos/out/action_flow"][:, 0],
             "action_rgb": expected["thumos/out/action_rgb"][:, 0],
             "video_logits": expected["thumos/out/sc"]}
  hp = sal_hparams.PRESETS["thumos14"]
  want = SAL_METHOD.localize(
      {k: v.astype(np.float32) for k, v in outputs.items()}, np.full(len(x), 64),
      np.full(len(x), 64), hp, video_names=[f"video_{i}" for i in range(len(x))],
      class_names=THUMOS14_CLASSES).detections
  assert len(want)
  _assert_same(got, want)
  assert json.loads(out.read_text())["version"] == "VERSION 1.3"


def test_nothing_to_process_exits_2(tmp_path, capsys):
  path = fixture_file("checkpoints/thumos_CAS_Only.pkl")
  _save(tmp_path / "wide.npy", np.zeros((7, 3), np.float32))
  assert detect_cmd.main(_checkpoint_flags(path) + [
      f"--features={tmp_path / 'wide.npy'}", f"--features={tmp_path / 'gone'}",
      f"--out={tmp_path / 'd.json'}"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 3 and "no video could be processed (2 files skipped)" in err[-1]
  assert not (tmp_path / "d.json").exists()
