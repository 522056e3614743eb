"""Every hyperparameter of the two shipped SAL code paths, pinned to SPEC sections 2-5.

The table below is written out from SPEC.md, not read from salx: changing any shipped
constant (or adding a field to `SALHparams` / `LossWeights` without pinning it here)
fails this file.
"""

import dataclasses
import inspect

import pytest

from salx.core import train_step
from salx.methods.sal import hparams as sal_hparams

# SPEC 2 (training step), 3 (inference and localization), 5 (evaluation).
THUMOS14 = {
    "name": "thumos14",
    "encoder_kernel": 3,                      # 1.4
    "rgb_weight": 0.1,                        # 1.3: lam
    "num_segments": 750,                      # 2.9, 3
    "mil_topk_divisor": 8,                    # 2.2: T // r, r = 8
    "mil_on_combined": True,                  # 2.2: top-k of comb
    "bg_topk_divisor": 8,                     # 2.3
    "pseudo_topk_extra": 17,                  # 2.4: T // r + 17
    "pseudo_topk_fixed": None,
    "confidence_gate": True,                  # 2.4: g2, top T // 2 of sum_c relu(cas)
    "mask_ema": 0.7,                          # 2.5
    "mask_var_factor": 0.5,                   # 2.5: var / 2
    "gce_q": 0.5,                             # 2.7
    "loss_weights": {"mil": 1.0, "mc": 5.0, "bg": 10.0, "act": 1.0, "se": 3.0,
                     "mix": 1.0},             # 2.7
    "combine_weights": (1 / 3, 1 / 3, 1 / 3),  # 2.1: (softmax(cas) + a_flow + a_rgb) / 3
    "inference_topk_divisor": 8,              # 3.1
    "beta": 0.35,                             # 3.2
    "class_thresh": 0.25,                     # 3.3
    "upsample_scale": 24,                     # 3.4
    "act_thresholds": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),  # 3.5
    "outer_lambda": 0.2,                      # 3.5: lam_o
    "gamma": 0.2,                             # 3.5
    "nms_thresh": 0.4,                        # 3.6
    "nms_alpha": 0.3,                         # 3.6
    "soft_nms": True,                         # 3.6
    "tiou_thresholds": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),  # 5
    "feature_fps": 25.0,                      # 3.5: 16 frames at 25 fps
    "frames_per_segment": 16,
    "sampling": "thumos14",                   # 2.9, 3
    "learning_rate": 1e-4,                    # 2.8
    "weight_decay": 5e-4,                     # 2.8: coupled L2
    "hidden_dim": 512,                        # 1: H, the embedding width
    "dropout_rate": 0.5,                      # 1: after each embedding
}

# SPEC 4: the ActivityNet code's differences; the rest as in sections 2, 3 and 5.
ACTIVITYNET = {
    "name": "activitynet",
    "encoder_kernel": 7,
    "rgb_weight": 0.3,
    "num_segments": 50,
    "mil_topk_divisor": 4,                    # MIL top-k T // 4 ...
    "mil_on_combined": False,                 # ... on cas itself
    "bg_topk_divisor": 8,                     # background top-k unchanged: T // r
    "pseudo_topk_extra": 0,
    "pseudo_topk_fixed": 40,                  # top 40 snippets of a
    "confidence_gate": False,                 # no g2
    "mask_ema": 0.99,
    "mask_var_factor": 6.0,                   # 6 var
    "gce_q": 0.5,
    "loss_weights": {"mil": 1.0, "mc": 20.0, "bg": 1.0, "act": 1.0, "se": 3.0,
                     "mix": 1.0},
    "combine_weights": (0.6, 0.2, 0.2),       # (softmax(cas), a_flow, a_rgb)
    "inference_topk_divisor": 4,
    "beta": 0.5,
    "class_thresh": 0.1,
    "upsample_scale": 24,
    "act_thresholds": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "outer_lambda": 0.2,
    "gamma": 0.2,
    "nms_thresh": 0.7,
    "nms_alpha": 0.35,
    "soft_nms": True,
    "tiou_thresholds": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    "feature_fps": 25.0,
    "frames_per_segment": 16,
    "sampling": "activitynet",
    "learning_rate": 1e-4,
    "weight_decay": 5e-4,
    "hidden_dim": 512,
    "dropout_rate": 0.5,
}

# SPEC 2.8 (and 4): PyTorch Adam, lr 1e-4, betas (0.9, 0.999), eps 1e-8, coupled wd 5e-4.
OPTIMIZER = {"learning_rate": 1e-4, "weight_decay": 5e-4, "b1": 0.9, "b2": 0.999,
             "eps": 1e-8}

SHIPPED = [(sal_hparams.THUMOS14, THUMOS14), (sal_hparams.ACTIVITYNET, ACTIVITYNET)]
IDS = ["thumos14", "activitynet"]


def _assert_same(field, got, want):
  """Exact for strings, bools, ints and None; floats to round-off (1e-12)."""
  if isinstance(want, tuple):
    assert isinstance(got, tuple) and len(got) == len(want), f"{field}: {got!r}"
    for i, (a, b) in enumerate(zip(got, want)):
      _assert_same(f"{field}[{i}]", a, b)
  elif want is None or isinstance(want, (str, bool)):
    assert got == want and type(got) is type(want), f"{field}: {got!r} != {want!r}"
  elif isinstance(want, int):
    assert got == want and isinstance(got, int) and not isinstance(got, bool), (
        f"{field}: {got!r} != {want!r}")
  else:
    assert got == pytest.approx(want, rel=1e-12, abs=0), f"{field}: {got!r} != {want!r}"


@pytest.mark.parametrize("variant,table", SHIPPED, ids=IDS)
def test_the_table_pins_every_field(variant, table):
  assert set(table) == {f.name for f in dataclasses.fields(sal_hparams.SALHparams)}
  assert set(table["loss_weights"]) == {f.name for f in dataclasses.fields(sal_hparams.LossWeights)}
  assert variant is sal_hparams.PRESETS[table["name"]]


@pytest.mark.parametrize("variant,table", SHIPPED, ids=IDS)
def test_shipped_variant_is_the_spec(variant, table):
  for field, want in table.items():
    got = getattr(variant, field)
    if field == "loss_weights":
      assert isinstance(got, sal_hparams.LossWeights)
      for term, weight in want.items():
        _assert_same(f"loss_weights.{term}", getattr(got, term), weight)
    else:
      _assert_same(field, got, want)


@pytest.mark.parametrize("variant,table", SHIPPED, ids=IDS)
def test_top_k_rules_follow_from_the_settings(variant, table):
  t = table["num_segments"]
  assert variant.mil_topk(t) == t // table["mil_topk_divisor"]
  assert variant.bg_topk(t) == t // table["bg_topk_divisor"]
  assert variant.inference_topk(t) == t // table["inference_topk_divisor"]
  expected = (table["pseudo_topk_fixed"] if table["pseudo_topk_fixed"] is not None
              else t // table["mil_topk_divisor"] + table["pseudo_topk_extra"])
  assert variant.pseudo_topk(t) == expected   # THUMOS14: 750 // 8 + 17 = 110


def test_optimizer_defaults_are_the_authors_adam():
  defaults = {name: p.default for name, p in
              inspect.signature(train_step.make_optimizer).parameters.items()}
  assert set(defaults) == set(OPTIMIZER)
  for name, want in OPTIMIZER.items():
    _assert_same(name, defaults[name], want)
