"""Parity of CO2-Net's and DELU's training side with the authors' code (SPEC-CO2NET-DELU 0-4).

One step fixture per method (`tests/fixtures/co2net_delu/*_step_small.npz`, README
there): the shipped preset is first checked against every setting the fixture's
`meta` and the authors' script flags name, then the model, every loss term, the
gradients, two Adam steps and the sampler are compared. Every dim comes from the
fixture. float64 (x64 is switched on inside these tests only), dropout off.
Test ids are the method names: `-k "parity and delu"` / `-k "parity and co2net"`.
"""

import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import configs.co2net_thumos
import configs.delu_thumos

from salx.core.train_step import make_optimizer
from salx.methods.co2net import hparams as hparams_lib
from salx.methods.co2net import losses
from salx.methods.co2net import sampling
from salx.methods.co2net import torch_names
from salx.methods.co2net.model import CO2Net
from salx.methods.delu import losses as delu_losses
from tests.conftest import fixture_file, wtalc_videos

FIXTURES = {"co2net": "co2net_delu/co2net_thumos_step_small.npz",
            "delu": "co2net_delu/delu_thumos_step_small.npz"}
PRESETS = {"CO2": hparams_lib.CO2NET_THUMOS14, "DELU": hparams_lib.DELU_THUMOS14}
METHODS = pytest.mark.parametrize("method", sorted(FIXTURES))
# meta key -> the shipped setting: "<field>" of the preset, or "config.<field>" of
# the method's config file (configs/co2net_thumos.py, configs/delu_thumos.py) for
# the run's own settings (floats compared to 1e-12, ints exactly).
META_FIELDS = {"lr": "learning_rate", "weight_decay": "weight_decay", "alpha1": "alpha1",
               "alpha2": "alpha2", "alpha3": "alpha3", "alpha4": "alpha4",
               "k": "mil_topk_divisor", "max_iter": "max_iter", "batch": "config.batch_size",
               "num_similar": "num_similar", "alpha_edl": "alpha_edl",
               "alpha_uct_guide": "alpha_uct_guide", "amplitude": "amplitude",
               "rat_atn": "rat_atn"}
# Script flag (dashes as underscores) -> the shipped setting, as above.
FLAG_FIELDS = {"max_seqlen": "max_seqlen", "lr": "learning_rate",
               "weight_decay": "weight_decay", "k": "mil_topk_divisor",
               "max_iter": "config.num_steps", "seed": "config.seed",
               "interval": "config.eval_every", "alpha1": "alpha1", "alpha2": "alpha2",
               "alpha3": "alpha3", "alpha4": "alpha4", "alpha_edl": "alpha_edl",
               "alpha_uct_guide": "alpha_uct_guide", "amplitude": "amplitude",
               "rat_atn": "rat_atn", "batch_size": "config.batch_size",
               "num_similar": "num_similar", "dropout_ratio": "dropout_ratio"}
CONFIGS = {"CO2": configs.co2net_thumos, "DELU": configs.delu_thumos}


def _shipped(meta, field):
  """The shipped value of `field` (see META_FIELDS) for the fixture's method."""
  if field.startswith("config."):
    return CONFIGS[meta["model_class"]].get_config()[field[len("config."):]]
  return getattr(PRESETS[meta["model_class"]], field)


OUTPUT_KEYS = ("feat", "cas", "attn", "v_atn", "f_atn")
CCM_INTERMEDIATES = {"channel_attn": "ca", "bit_wise_attn": "bw", "filter_feat": "f"}


@pytest.fixture
def x64():
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def _load(method):
  with np.load(fixture_file(FIXTURES[method])) as data:
    arrays = {k: data[k] for k in data.files}
  meta = json.loads(str(arrays.pop("meta")))
  return arrays, meta


def prefixed(arrays, prefix):
  """{name without prefix: array} of the keys under `prefix`, in file order."""
  return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _setup(method):
  """(arrays, meta, hp, model, params, x, labels, itr) at the fixture's dims, float64."""
  arrays, meta = _load(method)
  hp = PRESETS[meta["model_class"]]
  x = jnp.asarray(arrays["input/x"], jnp.float64)
  labels = jnp.asarray(arrays["input/label"], jnp.float64)
  assert x.shape[-1] == int(meta["feature_dim"]) == 2 * int(meta["rgb_width"])
  assert labels.shape[-1] == int(meta["num_classes"]) == len(meta["classes"])
  model = CO2Net(num_classes=labels.shape[-1], feature_dim=x.shape[-1],
                 attention_hidden=int(meta["attention_hidden"]),
                 dropout_ratio=hp.dropout_ratio, dtype=jnp.float64,
                 param_dtype=jnp.float64)
  params = torch_names.params_from_torch(prefixed(arrays, "param/"))
  params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
  return arrays, meta, hp, model, params, x, labels, int(meta["itr"])


def _close(got, ref, rel, what):
  """|got - ref| <= rel * max|ref|; returns the measured ratio."""
  got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
  assert got.shape == ref.shape, (what, got.shape, ref.shape)
  scale = np.max(np.abs(ref))
  err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
  assert err <= rel * scale, f"{what}: max error {err:.3e} > {rel:g} x {scale:.3e}"
  return err / scale if scale else err


def _scalar_close(got, ref, rel, what):
  got, ref = float(got), float(ref)
  assert abs(got - ref) <= rel * abs(ref), f"{what}: {got!r} vs {ref!r}"


def _script_flags(meta):
  flags, args = {}, list(meta["script_flags"])
  for i, arg in enumerate(args):
    if arg.startswith("--"):
      value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else True
      flags[arg[2:].replace("-", "_")] = value
  return flags


def _same(ours, theirs):
  if isinstance(ours, bool) or isinstance(theirs, bool):
    return bool(ours) == (theirs in (True, "True", "true", "1", 1))
  return abs(float(ours) - float(theirs)) <= 1e-12 * max(1.0, abs(float(theirs)))


@METHODS
def test_parity_presets_agree_with_meta_and_scripts(method):
  arrays, meta = _load(method)
  hp = PRESETS[meta["model_class"]]
  problems = []
  for key, field in META_FIELDS.items():
    if key in meta and not _same(_shipped(meta, field), meta[key]):
      problems.append(f"{field}: shipped {_shipped(meta, field)!r}, meta {key} "
                      f"{meta[key]!r}")
  flags = _script_flags(meta)
  checked_flags = [f for f in FLAG_FIELDS if f in flags]
  for flag in checked_flags:
    field = FLAG_FIELDS[flag]
    if not _same(_shipped(meta, field), flags[flag]):
      problems.append(f"{field}: shipped {_shipped(meta, field)!r}, script --{flag} "
                      f"{flags[flag]!r}")
  defaults = inspect.signature(make_optimizer).parameters
  for arg, value in zip(("b1", "b2", "eps"), list(meta["adam_betas"]) + [meta["adam_eps"]]):
    if not _same(defaults[arg].default, value):
      problems.append(f"make_optimizer {arg}: {defaults[arg].default} vs meta {value}")
  if int(meta["similar_size"]) != sampling.SIMILAR_SIZE:
    problems.append(f"similar_size {meta['similar_size']}")
  assert not problems, f"{method}: the preset differs from the authors': {problems}"
  # Not vacuous: the scripts name T, the seed, lr, k, max_iter and decay.
  assert {"max_seqlen", "seed", "lr", "k", "max_iter", "weight_decay"} <= set(checked_flags)

  num_segments = int(meta["num_segments"])
  assert hp.mil_topk(num_segments) == int(meta["mil_topk"])
  assert arrays["train/mil_topk_index_orig"].shape[1] == hp.mil_topk(num_segments)
  evidential = meta["model_class"] == "DELU"
  assert hp.evidential == evidential == ("loss/edl" in arrays)
  assert hp.length_filter == evidential
  assert hp.num_thresholds == (20 if evidential else 10)
  if evidential:
    assert hp.edl_topk(num_segments) == int(meta["edl_topk"])
    assert meta["evidence"].startswith("exp") and meta["edl_loss_type"] == "log"
    assert meta["with_kldiv"] is False
  assert set(meta["params_without_grad"]) == {"feat_encoder.0.weight",
                                              "feat_encoder.0.bias"}


@METHODS
def test_parity_forward_and_intermediates(method, x64):
  arrays, _, _, model, params, x, _, _ = _setup(method)
  outputs, state = jax.jit(lambda p: model.apply({"params": p}, x,
                                                 mutable=["intermediates"]))(params)
  for field in OUTPUT_KEYS:
    ref = arrays[f"out/{field}"]
    ref = ref[..., 0] if field in ("attn", "v_atn", "f_atn") else ref
    _close(getattr(outputs, field), ref, 1e-10, field)
  inter = state["intermediates"]
  for stream, module in (("v", "vAttn"), ("f", "fAttn")):
    for key, sown in CCM_INTERMEDIATES.items():
      _close(inter[module][sown][0], arrays[f"mid/{stream}_{key}"], 1e-10,
             f"{stream}_{key}")
  _close(inter["classifier_hidden"][0], arrays["mid/classifier_hidden"], 1e-10,
         "classifier_hidden")


@METHODS
def test_parity_loss_terms_and_their_insides(method, x64):
  arrays, meta, hp, model, params, x, labels, itr = _setup(method)
  total, (terms, outputs) = jax.jit(
      lambda p: losses.loss_fn(model, p, x, labels, hp, itr))(params)
  expected = {k: arrays[f"loss/{k}"] for k in
              ("mil_orig", "mil_supp", "contrastive", "mutual", "norm", "guide",
               "edl", "uct_guide") if f"loss/{k}" in arrays}
  assert set(terms) == set(expected)
  for name, ref in expected.items():
    _scalar_close(terms[name], ref, 1e-10, name)
  _scalar_close(total, arrays["loss/total"], 1e-10, "total")

  o = outputs
  num_segments = x.shape[1]
  k = hp.mil_topk(num_segments)
  s = losses.suppressed_cas(o.cas, o.attn)
  _close(s, arrays["train/cas_supp"], 1e-10, "cas_supp")
  for name, z, bg in (("orig", o.cas, 1.0), ("supp", s, 0.0)):
    _close(losses.mil_loss_per_video(z, labels, bg, k), arrays[f"train/mil_{name}"], 1e-10,
           f"mil_{name}")
    _, index = jax.lax.top_k(jnp.swapaxes(z, 1, 2), k)                    # [B, C+1, k]
    np.testing.assert_array_equal(np.swapaxes(np.asarray(index), 1, 2),
                                  arrays[f"train/mil_topk_index_{name}"])
  gamma = losses.guide_per_snippet(o.attn, o.v_atn, o.f_atn, o.cas)
  _scalar_close(jnp.mean(gamma), arrays["loss/guide"], 1e-10, "guide from gamma")

  if not hp.evidential:
    return
  _close(gamma, arrays["train/guide_per_snippet"], 1e-10, "guide_per_snippet")
  edl, details = delu_losses.evidential_loss(s, o.attn, labels, hp.edl_topk(num_segments))
  _scalar_close(edl, arrays["loss/edl"], 1e-10, "edl")
  np.testing.assert_array_equal(np.asarray(details.topk_index), arrays["train/edl_topk_index"])
  _close(details.video_logits, arrays["train/edl_video_logits"], 1e-10, "edl video logits")
  _close(details.loss_per_video, arrays["train/edl_loss_per_video"], 1e-10,
         "edl per video")
  _close(details.uncertainty, arrays["train/edl_video_uncertainty"], 1e-10,
         "edl uncertainty")
  assert delu_losses.annealing_coef(itr, hp.max_iter) == float(
      arrays["train/edl_annealing_coef"])

  uct, details = delu_losses.uct_guide_loss(s, gamma, itr, hp.max_iter, hp.amplitude,
                                            labels.shape[-1])
  _scalar_close(uct, arrays["loss/uct_guide"], 1e-10, "uct_guide")
  _close(details.uncertainty, arrays["train/snippet_uncertainty"], 1e-10,
         "snippet uncertainty")
  np.testing.assert_array_equal(np.asarray(details.sort_index), arrays["train/uct_sort_index"])
  _close(details.curve, arrays["train/curve"], 1e-10, "curve")
  _close(details.sorted_curve, arrays["train/sorted_curve"], 1e-10, "sorted curve")

  log = losses.delu_loss_dict(terms, hp)
  assert set(log) == set(prefixed(arrays, "loss_dict/"))
  for key, value in log.items():
    _scalar_close(value, arrays[f"loss_dict/{key}"], 1e-10, f"loss_dict/{key}")


@pytest.mark.parametrize("method", ["delu"])
def test_parity_course_curve(method, x64):
  arrays, meta = _load(method)
  hp = PRESETS[meta["model_class"]]
  for key, num_segments, max_iter in (("course/curve", int(meta["num_segments"]),
                                       int(meta["max_iter"])),
                                      ("course/curve_T320", 320, hp.max_iter)):
    got = np.stack([delu_losses.course_curve(int(i), num_segments, max_iter, hp.amplitude)
                    for i in arrays["course/itr"]])
    _close(got, arrays[key], 1e-10, key)


@METHODS
def test_parity_gradients_and_two_adam_steps(method, x64):
  arrays, _, hp, model, params, x, labels, itr = _setup(method)
  value_and_grad = jax.jit(jax.value_and_grad(
      lambda p, i: losses.loss_fn(model, p, x, labels, hp, i)[0]))
  _, grads = value_and_grad(params, itr)
  torch_grads = torch_names.params_to_torch(grads)
  assert set(torch_grads) == set(prefixed(arrays, "grad/"))   # no feat_encoder (3.2)
  for key, got in torch_grads.items():
    _close(got, arrays[f"grad/{key}"], 1e-8, f"grad {key}")
  for stream in ("vAttn", "fAttn"):   # 1.2.2: the side taps never see data.
    side = torch_grads[f"{stream}.channel_conv.0.weight"][:, :, [0, 2]]
    assert np.all(side == 0.0), stream

  tx = make_optimizer(hp.learning_rate, hp.weight_decay)
  opt_state = tx.init(params)

  @jax.jit
  def adam_step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  feat_encoder = torch_names.feat_encoder_from_torch(prefixed(arrays, "param/"))
  for step in (1, 2):
    params, opt_state = adam_step(params, opt_state, grads)
    stepped = torch_names.params_to_torch(params, feat_encoder)
    assert list(stepped) == list(prefixed(arrays, f"step{step}/"))
    for key, got in stepped.items():   # feat_encoder: theirs never moves.
      np.testing.assert_allclose(got, arrays[f"step{step}/{key}"], rtol=0, atol=1e-12,
                                 err_msg=f"step{step} {key}")
    if step == 1:
      loss2, grads = value_and_grad(params, itr + 1)
      _scalar_close(loss2, arrays["loss2/total"], 1e-10, "loss2/total")


def _wtalc_training_videos(classes):
  """(train_videos, their multi-hot labels) in the W-TALC file order (SPEC-CO2NET-DELU 4.1)."""
  train = [row for row in wtalc_videos() if row[2] == "validation"]
  labels = np.zeros((len(train), len(classes)))
  for n, (_, _, _, names) in enumerate(train):
    for name in names:
      labels[n, classes.index(name)] = 1
  return [index for index, *_ in train], labels


@METHODS
def test_parity_sampler_reproduces_their_batch(method):
  arrays, meta = _load(method)
  hp = PRESETS[meta["model_class"]]
  train_videos, train_labels = _wtalc_training_videos(meta["classes"])
  classwise = sampling.classwise_videos(train_videos, train_labels)
  video_index = arrays["data/video_index"]
  lengths = dict(zip(video_index.tolist(), arrays["data/video_length"].tolist()))
  got_videos, got_snippets = sampling.sample_batch(
      np.random.RandomState(int(meta["seed"])), classwise, train_videos, lengths,
      batch_size=int(meta["batch"]), num_similar=hp.num_similar,
      max_seqlen=int(meta["num_segments"]))
  np.testing.assert_array_equal(got_videos, video_index)
  np.testing.assert_array_equal(got_snippets, arrays["data/snippet_index"])
  # The labels are those of the sampled videos, and each pair shares a class.
  position = {v: n for n, v in enumerate(train_videos)}
  np.testing.assert_array_equal(train_labels[[position[v] for v in got_videos]],
                                arrays["input/label"])
  for i, j in losses.CONTRASTIVE_PAIRS:
    assert np.any(arrays["input/label"][i] * arrays["input/label"][j] > 0)
  # 4.4: seq_len counts the rows with a nonzero value (all of them here).
  seq_len = np.sum(np.any(arrays["input/x"] != 0, axis=-1), axis=-1)
  np.testing.assert_array_equal(seq_len, arrays["data/seq_len"])
