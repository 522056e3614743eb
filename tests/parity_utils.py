"""Reading the authors' step fixtures: the variant and model their `meta` describe."""

import json
import re

import numpy as np

from salx.core import variants
from salx.core.model import SAL


def _divisor(text: str, meta: dict) -> int:
  match = re.fullmatch(r"\s*T\s*//\s*(\w+)\s*", text)
  if not match:
    raise ValueError(f"cannot read a top-k rule from {text!r}")
  value = match.group(1)
  return int(meta[value]) if value in meta else int(value)


def variant_from_meta(meta: dict) -> variants.Variant:
  """The Variant of a fixture: every hyperparameter taken from its meta."""
  base = (variants.ACTIVITYNET if meta["variant"].startswith("activitynet")
          else variants.THUMOS14)
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
  return base.replace(
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
      loss_weights=variants.LossWeights(**{k: float(v) for k, v in weights.items()}),
  )


def load_step_fixture(path):
  """(arrays dict, meta dict, variant, model) of a `sal_*_step_small.npz`."""
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files}
  meta = json.loads(str(arrays.pop("meta")))
  variant = variant_from_meta(meta)
  model = SAL(num_classes=int(meta["num_classes"]), feature_dim=int(meta["feature_dim"]),
              hidden_dim=int(meta["hidden"]), encoder_kernel=variant.encoder_kernel,
              rgb_weight=variant.rgb_weight, dropout_rate=0.5)
  return arrays, meta, variant, model


def prefixed(arrays: dict, prefix: str) -> dict:
  return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
