"""Reading the authors' fixtures, and checking that their settings are the shipped ones.

A step fixture's `meta` and a post-processing fixture's `config` name the
hyperparameters the authors' code ran with. The parity tests compute with the
shipped code path (`salx.methods.sal.hparams.THUMOS14` / `ACTIVITYNET`, the default
optimizer) and first check that it agrees with the fixture on every quantity both
name, so changing a shipped constant fails them.
"""

import json
import re

import numpy as np

from salx.methods.sal import model as model_lib
from salx.methods.sal import hparams as sal_hparams

# Variant fields a step fixture's meta gives (T is the fixture's own size, not a setting).
STEP_META_FIELDS = ("encoder_kernel", "rgb_weight", "mil_topk_divisor", "mil_on_combined",
                    "bg_topk_divisor", "pseudo_topk_fixed", "pseudo_topk_extra",
                    "confidence_gate", "mask_ema", "mask_var_factor", "gce_q",
                    "loss_weights")
# Post-processing config key -> Variant field.
POSTPROCESS_CONFIG_FIELDS = {
    "num_segments": "num_segments", "r": "inference_topk_divisor", "beta": "beta",
    "class_thresh": "class_thresh", "scale": "upsample_scale",
    "feature_fps": "feature_fps", "frames_per_segment": "frames_per_segment",
    "gamma": "gamma", "outer_lambda": "outer_lambda", "act_thresh": "act_thresholds",
    "nms_thresh": "nms_thresh", "soft_nms": "soft_nms", "nms_alpha": "nms_alpha",
    "tiou_thresholds": "tiou_thresholds",
}
# Post-processing config names of the (softmax(cas), a_flow, a_rgb) combine weights.
COMBINE_KEYS = ("softmax_cas", "action_flow", "action_rgb")


def _divisor(text: str, meta: dict) -> int:
  match = re.fullmatch(r"\s*T\s*//\s*(\w+)\s*", text)
  if not match:
    raise ValueError(f"cannot read a top-k rule from {text!r}")
  value = match.group(1)
  return int(meta[value]) if value in meta else int(value)


def shipped_variant_of(meta: dict) -> sal_hparams.SALHparams:
  """The shipped Variant of a fixture's code path ('thumos...' or 'activitynet...')."""
  name = str(meta["variant"])
  return sal_hparams.ACTIVITYNET if name.startswith("activitynet") else sal_hparams.THUMOS14


def variant_from_meta(meta: dict) -> sal_hparams.SALHparams:
  """The Variant a step fixture describes: every hyperparameter taken from its meta."""
  mil_rule, _, mil_on = meta["mil_topk"].partition(" on ")
  pseudo = meta["pseudo_topk"]
  if isinstance(pseudo, (int, float)) or str(pseudo).strip().isdigit():
    pseudo_fixed, pseudo_extra = int(pseudo), 0
  else:
    rule, _, extra = str(pseudo).partition("+")
    if _divisor(rule, meta) != _divisor(mil_rule, meta):
      raise ValueError(f"pseudo-label rule {pseudo!r} uses another divisor than MIL")
    extra = extra.strip()
    pseudo_fixed, pseudo_extra = None, int(meta[extra]) if extra in meta else int(extra)
  weights = meta["loss_weights"]
  return shipped_variant_of(meta).replace(
      encoder_kernel=int(meta["encoder_kernel"]),
      rgb_weight=float(meta["hp_lambda"]),
      num_segments=int(meta["num_segments"]),
      mil_topk_divisor=_divisor(mil_rule, meta),
      mil_on_combined=mil_on.strip() in ("combined_cas", "combined"),
      bg_topk_divisor=_divisor(meta["bg_topk"], meta),
      pseudo_topk_fixed=pseudo_fixed,
      pseudo_topk_extra=pseudo_extra,
      confidence_gate=bool(meta["confidence_gate"]),
      mask_ema=float(meta["ema"]),
      mask_var_factor=float(meta["mask_var_div"]),
      gce_q=float(meta["q"]),
      loss_weights=sal_hparams.LossWeights(**{k: float(v) for k, v in weights.items()}),
  )


def _differs(ours, theirs) -> bool:
  if isinstance(ours, (tuple, list)) or isinstance(theirs, (tuple, list)):
    return len(ours) != len(theirs) or any(_differs(a, b) for a, b in zip(ours, theirs))
  if isinstance(ours, bool) or isinstance(theirs, bool) or ours is None or theirs is None:
    return ours is not theirs and ours != theirs
  return abs(float(ours) - float(theirs)) > 1e-12 * max(1.0, abs(float(theirs)))


def step_meta_disagreements(meta: dict) -> list:
  """'<field>: shipped X, fixture Y' for each setting where the shipped path differs.

  Covers every Variant field the meta names (loss weights, ema, mask divisor, q,
  lambda, kernel, top-k rules, confidence gate) and the optimizer's lr and weight
  decay.
  """
  shipped, fixture = shipped_variant_of(meta), variant_from_meta(meta)
  out = []
  for field in STEP_META_FIELDS:
    ours, theirs = getattr(shipped, field), getattr(fixture, field)
    if field == "loss_weights":
      for term in theirs.__dataclass_fields__:
        if _differs(getattr(ours, term), getattr(theirs, term)):
          out.append(f"loss_weights.{term}: shipped {getattr(ours, term)}, "
                     f"fixture {getattr(theirs, term)}")
    elif _differs(ours, theirs):
      out.append(f"{field}: shipped {ours!r}, fixture {theirs!r}")
  for field, key in (("learning_rate", "lr"), ("weight_decay", "weight_decay")):
    if _differs(getattr(shipped, field), meta[key]):
      out.append(f"{field}: shipped {getattr(shipped, field)}, fixture {meta[key]}")
  return out


def postprocess_config_disagreements(config: dict, variant: sal_hparams.SALHparams) -> list:
  """Like `step_meta_disagreements`, for a post-processing fixture's `config`."""
  out = []
  for key, field in POSTPROCESS_CONFIG_FIELDS.items():
    if key in config and _differs(getattr(variant, field), config[key]):
      out.append(f"{field}: shipped {getattr(variant, field)!r}, fixture {config[key]!r}")
  if "combine_weights" in config:
    theirs = tuple(config["combine_weights"][k] for k in COMBINE_KEYS)
    if _differs(variant.combine_weights, theirs):
      out.append(f"combine_weights: shipped {variant.combine_weights}, fixture {theirs}")
  return out


def load_step_fixture(path):
  """(arrays dict, meta dict, variant, model) of a `sal_*_step_small.npz`.

  The variant is the shipped preset at the fixture's T and hidden width, dropout
  off (the fixtures are computed without it), the model the shipped builder's.
  """
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files}
  meta = json.loads(str(arrays.pop("meta")))
  variant = shipped_variant_of(meta).replace(num_segments=int(meta["num_segments"]),
                                             hidden_dim=int(meta["hidden"]),
                                             dropout_rate=0.0)
  model = model_lib.build_model(int(meta["num_classes"]), variant,
                                feature_dim=int(meta["feature_dim"]))
  return arrays, meta, variant, model


def prefixed(arrays: dict, prefix: str) -> dict:
  return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
