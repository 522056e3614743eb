"""The synthetic dataset generator (salx.datasets.synthetic) and its command line
(salx.datasets.synthetic): the demo dataset, determinism, atomic writing, flags."""

import dataclasses
import io
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from salx.datasets import layouts
from salx.datasets import synthetic
from salx.datasets.synthetic import command
from salx.datasets.synthetic import features as features_lib
from salx.datasets import source as source_lib
from salx.core import constants
from salx.datasets import errors
from tests.conftest import ROOT, data_file

TINY = synthetic.SyntheticSpec(num_classes=3, num_train=4, num_test=2, min_length=24,
                               max_length=48)


def _all_records(folder, dataset="thumos14"):
  source = layouts.open_source(folder, dataset)
  return {name: source.load(split, name)
          for split in constants.SPLITS for name in source.video_names(split)}


def _assert_same_datasets(first, second):
  a, b = _all_records(first), _all_records(second)
  assert list(a) == list(b)
  for name in a:
    np.testing.assert_array_equal(a[name].features, b[name].features)
    np.testing.assert_array_equal(a[name].segments, b[name].segments)
    assert a[name].segment_labels == b[name].segment_labels


def test_default_spec_is_the_small_demo_dataset():
  spec = synthetic.SyntheticSpec()
  plans, class_names = synthetic.plan_synthetic_videos(spec)
  train = [p for p in plans if p.split == "train"]
  test = [p for p in plans if p.split == "test"]
  assert (len(class_names), len(train), len(test)) == (5, 60, 30)
  assert spec.feature_dim == 2048
  assert all(spec.min_length <= p.length <= spec.max_length for p in plans)
  assert synthetic.estimated_size_bytes(plans, spec) < 150e6
  for name in class_names:   # Every class is learnable and evaluated.
    assert sum(name in p.segment_labels for p in train) >= 6
    assert sum(name in p.segment_labels for p in test) >= 2
  assert all(p.segment_labels for p in plans)
  coverage = [np.sum(p.segments[:, 1] - p.segments[:, 0]) / p.duration for p in plans]
  assert 0.1 < np.mean(coverage) < 0.4   # Actions are a minority of the snippets.


def test_plans_are_consistent():
  plans, class_names = synthetic.plan_synthetic_videos(synthetic.SyntheticSpec())
  for plan in plans:
    assert source_lib.snippets_for_duration(plan.duration) == plan.length
    starts, ends = plan.segments[:, 0], plan.segments[:, 1]
    assert np.all(ends > starts) and np.all(starts >= 0)
    assert np.all(ends <= plan.length * constants.SECONDS_PER_SNIPPET)
    assert np.all(starts[1:] >= ends[:-1])   # No overlapping instances.
    assert set(plan.segment_labels) <= set(class_names)


def test_generation_is_deterministic_for_a_seed(tmp_path):
  first = synthetic.make_synthetic_dataset(tmp_path / "a", TINY)
  second = synthetic.make_synthetic_dataset(tmp_path / "b", TINY)
  _assert_same_datasets(first, second)
  other = synthetic.make_synthetic_dataset(tmp_path / "c",
                                           dataclasses.replace(TINY, seed=1))
  a, c = _all_records(first), _all_records(other)
  assert not np.array_equal(a["synthetic_train_0000"].features[:10],
                            c["synthetic_train_0000"].features[:10])


def test_a_video_does_not_depend_on_how_many_are_made(tmp_path):
  few = _all_records(synthetic.make_synthetic_dataset(tmp_path / "few", TINY))
  more = _all_records(synthetic.make_synthetic_dataset(
      tmp_path / "more", dataclasses.replace(TINY, num_train=7)))
  for name in few:
    np.testing.assert_array_equal(few[name].features, more[name].features)


def _stream_projection(features, prototypes, half):
  """[L, C] cosine of the flow half of each snippet with each class prototype."""
  flow = features[:, half:] / np.linalg.norm(features[:, half:], axis=1, keepdims=True)
  protos = prototypes[:, half:] / np.linalg.norm(prototypes[:, half:], axis=1,
                                                 keepdims=True)
  return flow @ protos.T


def test_actions_carry_their_class_prototype_and_context_confuses():
  spec = dataclasses.replace(synthetic.SyntheticSpec(), num_train=12, num_test=0)
  plans, class_names = synthetic.plan_synthetic_videos(spec)
  prototypes = synthetic.class_prototypes(spec, len(class_names))
  half = spec.feature_dim // 2
  own_action, own_context, own_background, other_action = [], [], [], []
  for plan, record in zip(plans, synthetic.generate_records(plans, class_names, spec)):
    projection = _stream_projection(record.features, prototypes, half)
    snippet_seconds = (np.arange(plan.length) + 0.5) * constants.SECONDS_PER_SNIPPET
    for (start, end), label in zip(plan.segments, plan.segment_labels):
      c = class_names.index(label)
      inside = (snippet_seconds > start) & (snippet_seconds < end)
      near = (~inside & (snippet_seconds > start - 2) & (snippet_seconds < end + 2))
      own_action.extend(projection[inside, c])
      own_context.extend(projection[near, c])
      other_action.extend(np.delete(projection[inside], c, axis=1).ravel())
    covered = np.zeros(plan.length, bool)
    for start, end in plan.segments:
      covered |= (snippet_seconds > start - 6) & (snippet_seconds < end + 6)
    labels = [class_names.index(label) for label in set(plan.segment_labels)]
    own_background.extend(projection[~covered][:, labels].ravel())
  action, context = np.mean(own_action), np.mean(own_context)
  background, other = np.mean(own_background), np.mean(other_action)
  # Actions are separable from background by their class...
  assert action > background + 0.1
  assert action > other + 0.05
  # ...but context near actions looks partly like the action.
  assert background + 0.01 < context < action


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
  real_generate = features_lib.generate_records

  def interrupted(plans, class_names, spec):
    for i, record in enumerate(real_generate(plans, class_names, spec)):
      if i == 2:
        raise KeyboardInterrupt
      yield record

  monkeypatch.setattr(features_lib, "generate_records", interrupted)
  with pytest.raises(KeyboardInterrupt):
    synthetic.make_synthetic_dataset(tmp_path / "data", TINY)
  assert os.listdir(tmp_path) == []


def test_existing_dataset_is_reused_and_a_different_one_refused(tmp_path):
  path = synthetic.make_synthetic_dataset(tmp_path / "data", TINY)
  marker = os.path.join(path, "gt.json")
  stamp = os.stat(marker).st_mtime_ns
  assert synthetic.make_synthetic_dataset(tmp_path / "data", TINY) == path
  assert os.stat(marker).st_mtime_ns == stamp
  with pytest.raises(errors.DataError, match="already exists"):
    synthetic.make_synthetic_dataset(tmp_path / "data", TINY, layout="acmnet")
  synthetic.make_synthetic_dataset(tmp_path / "data", TINY, layout="acmnet",
                                   overwrite=True)
  assert layouts.detect_layout(path) == "acmnet"
  assert sorted(os.listdir(tmp_path)) == ["data"]


def test_empty_existing_folder_is_filled(tmp_path):
  (tmp_path / "data").mkdir()
  path = synthetic.make_synthetic_dataset(tmp_path / "data", TINY)
  assert layouts.detect_layout(path) == "sal"


@pytest.mark.slow
@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_cli_writes_the_layout(tmp_path, layout, capsys):
  out = tmp_path / "data"
  status = command.main(["--out", str(out), "--layout", layout, "--num_train", "3",
                           "--num_test", "2", "--min_length", "20", "--max_length",
                           "30", "--seed", "5", "--num_classes", "4"])
  assert status == 0
  assert "3 train / 2 test" in capsys.readouterr().out
  assert layouts.detect_layout(out) == layout
  source = layouts.open_source(out, "thumos14")
  assert len(source.class_names) == 4
  record = source.load("train", source.video_names("train")[0])
  assert record.features.shape[1] == 2048 and 20 <= record.num_snippets <= 30


@pytest.mark.slow
def test_cli_refuses_a_bad_spec(tmp_path, capsys):
  status = command.main(["--out", str(tmp_path / "x"), "--feature_dim", "7"])
  assert status == 2
  assert "feature_dim" in capsys.readouterr().err
  assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv,named", [
    ([], "--out"),                                               # Required.
    (["--out", "x", "--num_train", "many"], "num_train"),        # Not an integer.
    (["--out", "x", "--layout", "bids"], "layout"),              # Not a layout.
    (["--out", "x", "--loudness", "3"], "loudness"),             # No such flag.
    (["--out", "x", "extra"], "extra"),                          # A stray argument.
])
def test_cli_bad_input_is_one_line_and_status_2(tmp_path, monkeypatch, capsys, argv,
                                                named):
  monkeypatch.chdir(tmp_path)
  assert command.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("python -m salx.datasets.synthetic: error: ") and named in lines[0]
  assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_cli_copy_of_a_missing_annotation_file_names_it(tmp_path, capsys):
  missing = tmp_path / "nowhere" / "gt.json"
  status = command.main(["--out", str(tmp_path / "x"), "--annotations", str(missing)])
  assert status == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and str(missing) in err


@pytest.mark.slow
def test_cli_help_lists_every_flag_and_exits_0(capsys):
  assert command.main(["--help"]) == 0
  text = capsys.readouterr().out
  assert "python -m salx.datasets.synthetic" in text
  names = ["out", "layout", "dataset", "annotations", "video_info", "split_train",
           "split_test", "class_list", "max_videos", "max_snippets", "overwrite"]
  names += [f.name for f in dataclasses.fields(synthetic.SyntheticSpec)]
  for name in names:
    assert f"--{name}" in text
  assert "(default: '1.0')" in text   # The SyntheticSpec defaults are shown.


def _flag_values(*argv):
  values = flags.FlagValues()
  command._define_flags(values)   # pylint: disable=protected-access
  values(["synthetic", *argv])
  return values


def test_cli_every_flag_has_a_description():
  values = _flag_values("--out", "x")
  names = list(values)
  assert len(names) == 11 + len(dataclasses.fields(synthetic.SyntheticSpec))
  assert set(synthetic.FIELD_HELP) == {f.name for f in
                                       dataclasses.fields(synthetic.SyntheticSpec)}
  for name in names:
    text = values[name].help or ""
    assert len(text.split()) >= 4 and not text.startswith("SyntheticSpec"), (name, text)


@pytest.mark.slow
def test_cli_defaults_are_the_demo_configs_generator_settings(tmp_path, monkeypatch,
                                                              capsys):
  import configs.synthetic  # pylint: disable=g-import-not-at-top
  demo = dict(configs.synthetic.SYNTHETIC_SPEC,
              feature_dim=configs.synthetic.get_config().feature_dim)
  assert dataclasses.asdict(command.spec_from_flags(_flag_values("--out", "x"))) == demo
  assert dataclasses.asdict(synthetic.SyntheticSpec()) == demo
  # The command itself asks the generator for that spec.
  asked = []

  def fake_make(out, spec, *args, **kwargs):
    del out, args, kwargs
    asked.append(spec)
    raise ValueError("stop here")

  monkeypatch.setattr(synthetic, "make_synthetic_dataset", fake_make)
  assert command.main(["--out", str(tmp_path / "demo")]) == 2
  assert "stop here" in capsys.readouterr().err
  assert asked == [synthetic.SyntheticSpec()]
  assert command.spec_from_flags(
      _flag_values("--out", "x", "--noise_std", "2")).noise_std == 2.0


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_generation_shows_a_bar_on_a_terminal_only(tmp_path, monkeypatch, capsys):
  synthetic.make_synthetic_dataset(tmp_path / "quiet", TINY)
  assert capsys.readouterr().err == ""   # Captured stderr is not a terminal.
  terminal = _Terminal()
  monkeypatch.setattr(sys, "stderr", terminal)
  synthetic.make_synthetic_dataset(tmp_path / "shown", TINY, layout="wtalc")
  last = terminal.getvalue().rstrip("\n").split("\r")[-1]
  assert last.startswith("writing wtalc, ~2 MB  [#") and "6/6  100%" in last
  assert "videos/s" in last and terminal.getvalue().endswith("\n")
  synthetic.make_synthetic_dataset(tmp_path / "off", TINY, progress=False)
  assert "writing sal" not in terminal.getvalue()


@pytest.mark.slow
def test_cli_runs_as_a_module_and_defines_no_global_flags(tmp_path):
  """`python -m` works; importing the command leaves absl's global flags alone."""
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  run = lambda *args: subprocess.run(   # noqa: E731
      [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
      timeout=120)
  help_run = run("-m", "salx.datasets.synthetic", "--help")
  assert help_run.returncode == 0 and "--max_snippets" in help_run.stdout
  bad = run("-m", "salx.datasets.synthetic", "--out", "x", "--seed", "-")
  assert bad.returncode == 2 and "Traceback" not in bad.stderr
  assert len(bad.stderr.strip().splitlines()) == 1 and "seed" in bad.stderr
  imported = run("-c", "from absl import flags; import salx.datasets.synthetic; "
                       "print('out' in flags.FLAGS, 'seed' in flags.FLAGS)")
  assert imported.returncode == 0 and imported.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("changes", [dict(feature_dim=3), dict(min_length=0),
                                     dict(min_length=50, max_length=40),
                                     dict(noise_smoothness=1.0)])
def test_spec_checks_its_fields(changes):
  with pytest.raises(ValueError, match="invalid SyntheticSpec"):
    synthetic.SyntheticSpec(**changes)


@pytest.mark.slow
def test_cli_copies_real_annotations(tmp_path):
  out = tmp_path / "thumos"
  status = command.main([
      "--out", str(out), "--layout", "acmnet",
      "--annotations", str(data_file("thumos14/gt.json")),
      "--video_info", str(data_file("thumos14/video_info.csv")),
      "--max_videos", "2", "--max_snippets", "32"])
  assert status == 0
  source = layouts.open_source(out, "thumos14")
  assert source.class_names[0] == "BaseballPitch" and len(source.class_names) == 20
  real = source_lib.read_ground_truth_json(data_file("thumos14/gt.json"))
  for split in constants.SPLITS:
    names = source.video_names(split)
    assert len(names) == 2 and all(n in real for n in names)
    for name in names:
      record = source.load(split, name)
      assert record.num_snippets <= 32
      assert record.num_snippets == source_lib.snippets_for_duration(record.duration)
      assert record.segments.max() <= record.duration
      assert record.segment_labels
      assert set(record.segment_labels) <= set(real[name].segment_labels)


def test_cropping_keeps_instances_inside_the_window():
  plans, _ = synthetic.plan_from_annotations(
      data_file("activitynet13/gt_from_bsn.json"), "activitynet13",
      max_videos=20, max_snippets=25)
  assert len(plans) == 40
  for plan in plans:
    assert plan.length <= 25
    assert np.all(plan.segments >= 0)
    assert np.all(plan.segments <= plan.duration)
    assert np.all(plan.segments[:, 1] > plan.segments[:, 0])
    if plan.split == "train":
      assert plan.segment_labels
