"""CO2-Net / DELU test batches: whole videos padded to one length and masked give
each video the outputs it gets alone (SPEC-CO2NET-DELU 5.1 runs one video at a
time); the method's hooks produce the one Detections type."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.methods.co2net import hparams as co2net_hparams
from salx.methods.co2net.method import CO2NET_METHOD
from salx.methods.delu.method import DELU_METHOD
from salx.postprocess.detections import Detections

C, D = 4, 32


def _model_and_params(method, hp):
  model = method.build_model(hp, num_classes=C, feature_dim=D)
  params = method.init_params(model, hp, jax.random.key(0), (2, 16, D))
  return model, params


@pytest.mark.slow
def test_padded_masked_batch_equals_each_video_alone():
  hp = co2net_hparams.CO2NET_THUMOS14.replace(attention_hidden=8)
  model, params = _model_and_params(CO2NET_METHOD, hp)
  rng = np.random.default_rng(0)
  lengths = [23, 9, 40]
  videos = [rng.normal(size=(n, D)).astype(np.float32) for n in lengths]
  padded = np.zeros((3, 48, D), np.float32)
  mask = np.zeros((3, 48), bool)
  for b, v in enumerate(videos):
    padded[b, :len(v)], mask[b, :len(v)] = v, True
  together = CO2NET_METHOD.eval_outputs(model, params, jnp.asarray(padded),
                                        jnp.asarray(mask), hp)
  unmasked = CO2NET_METHOD.eval_outputs(model, params, jnp.asarray(padded), None, hp)
  for b, v in enumerate(videos):
    alone = CO2NET_METHOD.eval_outputs(model, params, jnp.asarray(v[None]), None, hp)
    for key in ("cas", "attn"):
      np.testing.assert_allclose(np.asarray(together[key][b, :len(v)]),
                                 np.asarray(alone[key][0]), rtol=1e-5, atol=1e-6,
                                 err_msg=key)
  # Not vacuous: without the mask the padding changes the shorter videos' outputs.
  assert not np.allclose(np.asarray(unmasked["cas"][1, :9]),
                         np.asarray(together["cas"][1, :9]), atol=1e-6)


def test_localize_gives_detections_in_seconds_and_delu_drops_single_snippets():
  rng = np.random.default_rng(1)
  outputs = {"cas": rng.normal(size=(2, 60, C + 1)).astype(np.float32) * 3,
             "attn": rng.uniform(size=(2, 60)).astype(np.float32)}
  names, classes = ["va", "vb"], [f"c{i}" for i in range(C)]
  out = {}
  for method in (CO2NET_METHOD, DELU_METHOD):
    hp = method.presets["thumos14"]
    localized = method.localize(outputs, np.array([60, 41]), np.array([60, 41]), hp,
                                video_names=names, class_names=classes)
    assert isinstance(localized.detections, Detections)
    assert localized.predicted.shape == (2, C) and localized.predicted.any(axis=1).all()
    out[method.name] = localized.detections
  snippets = lambda d: np.round((d.end - d.start) * 25 / 16)   # noqa: E731
  assert len(out["co2net"]) > 0 and (snippets(out["co2net"]) <= 1).any()
  assert (snippets(out["delu"]) > 1).all()
  # Detections stay inside each video's valid length (41 snippets for vb).
  vb = out["co2net"].take(out["co2net"].video == 1)
  assert vb.end.max() <= 41 * 16 / 25 + 1e-9
