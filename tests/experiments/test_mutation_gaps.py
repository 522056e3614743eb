"""Behaviour the other tests left open: bugs that changed no result they checked.

Each test pins one documented behaviour: the loss weights of a config reach
their own terms, the W-TALC subset names of the files as W-TALC ships them map
to the right splits, and the cross-field config checks refuse what they must.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import configs.activitynet13
import configs.thumos
from salx.app import config as config_lib
from salx.methods.sal import losses
from salx.methods.sal import hparams as sal_hparams
from salx.datasets import layouts
from salx.datasets import npy

TERMS = ("mil", "mc", "bg", "act", "se", "mix")


# ---------------------------------------------------------------------------
# Loss weights (SPEC 2.7): total = sum of weight * term, every weight its own term's.


def test_each_loss_weight_scales_its_own_term_only():
  terms = {name: jnp.asarray(10.0 ** i) for i, name in enumerate(TERMS)}
  for name in TERMS:
    weights = sal_hparams.LossWeights(**{t: float(t == name) for t in TERMS})
    assert float(losses.total_loss(terms, weights)) == float(terms[name]), name
  mixed = sal_hparams.LossWeights(mil=2.0, mc=3.0, bg=5.0, act=7.0, se=11.0, mix=13.0)
  expected = sum(getattr(mixed, t) * float(terms[t]) for t in TERMS)
  np.testing.assert_allclose(float(losses.total_loss(terms, mixed)), expected, rtol=1e-6)


# ---------------------------------------------------------------------------
# W-TALC subsets, from annotation arrays written as W-TALC ships them.

FEATURE_DIM = 8
WTALC_FOLDERS = [
    # dataset, file prefix, train subset, test subset
    ("thumos14", "Thumos14reduced", "validation", "test"),
    ("activitynet12", "ActivityNet1.2", "training", "validation"),
    ("activitynet13", "ActivityNet1.3", "training", "validation"),
]


def _write_wtalc_folder(folder, prefix, subsets):
  """A W-TALC folder of one video per subset (names 'clip_<subset>'), by hand.

  Video i has i + 3 snippets of value i and one instance of class 'A' or 'B'.
  """
  names = [f"clip_{s}" for s in subsets]
  annotations = folder / f"{prefix}-Annotations"
  annotations.mkdir(parents=True)
  arrays = {
      "videoname": np.array([n.encode() for n in names], np.bytes_),
      "subset": np.array([s.encode() for s in subsets], np.bytes_),
      "segments": npy.object_array([[[0.5, 1.5]] for _ in names]),
      "labels": npy.object_array([["AB"[i % 2]] for i in range(len(names))]),
      "classlist": np.array([b"A", b"B"], np.bytes_),
  }
  for field, array in arrays.items():
    npy.save_npy(annotations / f"{field}.npy", array)
  npy.save_npy(folder / f"{prefix}-I3D-JOINTFeatures.npy", npy.object_array(
      [np.full((i + 3, FEATURE_DIM), i, np.float32) for i in range(len(names))]))
  return names


@pytest.mark.parametrize("dataset,prefix,train_subset,test_subset", WTALC_FOLDERS,
                         ids=[w[0] for w in WTALC_FOLDERS])
def test_wtalc_subsets_map_to_their_splits(tmp_path, dataset, prefix, train_subset,
                                           test_subset):
  # A subset that is neither (ActivityNet's unlabelled 'testing') joins no split.
  subsets = [test_subset, train_subset, "testing", train_subset]
  names = _write_wtalc_folder(tmp_path, prefix, subsets)
  source = layouts.open_source(tmp_path, dataset, feature_dim=FEATURE_DIM)
  assert source.layout == "wtalc"
  assert source.video_names("train") == [names[1], names[3]]
  assert source.video_names("test") == [names[0]]
  record = source.load("train", names[1])
  np.testing.assert_array_equal(record.features, np.full((4, FEATURE_DIM), 1.0))
  assert record.labels.tolist() == [0.0, 1.0]


# ---------------------------------------------------------------------------
# Cross-field config checks, each naming its field.


def test_an_odd_feature_dim_is_refused_naming_the_field():
  config = configs.thumos.get_config()
  config_lib.check_config(config)   # The shipped config passes.
  config.feature_dim = 2047
  with pytest.raises(config_lib.ConfigError, match=r"config\.feature_dim must be even"):
    config_lib.check_config(config)


def test_activitynet_sampling_requires_keeping_short_test_videos_whole():
  config = configs.activitynet13.get_config()
  config_lib.check_config(config)
  config.eval_keep_all_if_shorter = False
  with pytest.raises(config_lib.ConfigError,
                     match=r"config\.eval_keep_all_if_shorter must be True"):
    config_lib.check_config(config)
  # The THUMOS14 sampling may keep them or not.
  thumos = configs.thumos.get_config()
  for keep in (False, True):
    thumos.eval_keep_all_if_shorter = keep
    config_lib.check_config(thumos)
