"""salx: weakly supervised temporal action localization in JAX.

The names a researcher starts from (imported on first use, so `python -m salx.*`
commands start without loading JAX):

    import salx
    method = salx.SAL                       # or salx.CO2NET, salx.DELU, get_method(name)
    hp = method.presets["thumos14"]         # a pytree of hyperparameters
    model = method.build_model(hp, num_classes=20, feature_dim=2048)
    state = salx.create_train_state(method, model, hp, key, input_shape=(2, 750, 2048))
    step = jax.jit(salx.make_train_step(method, model))
    state, metrics = step(state, batch, key, hp)
    # K members in one step: salx.make_members_step, salx.create_members_state,
    # with salx.stack_hparams([hp0, hp1, ...]).
    localized = salx.localize(...)          # SAL's localization -> salx.Detections
    result = salx.evaluate_detections(ground_truth, localized.detections, thresholds)
    params = salx.load_official_checkpoint("CAS_Only.pkl")   # no torch needed
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "SAL": ("salx.methods.sal.method", "SAL_METHOD"),
    "CO2NET": ("salx.methods.co2net.method", "CO2NET_METHOD"),
    "DELU": ("salx.methods.delu.method", "DELU_METHOD"),
    "get_method": ("salx.methods.registry", "get_method"),
    "register_method": ("salx.methods.registry", "register"),
    "create_train_state": ("salx.core.train_step", "create_train_state"),
    "make_train_step": ("salx.core.train_step", "make_train_step"),
    "create_members_state": ("salx.core.members", "create_members_state"),
    "make_members_step": ("salx.core.members", "make_members_step"),
    "stack_hparams": ("salx.core.hparams", "stack"),
    "localize": ("salx.postprocess.localization", "localize"),
    "evaluate_detections": ("salx.postprocess.ap", "evaluate_detections"),
    "evaluate_protocol": ("salx.postprocess.protocols", "evaluate"),
    "load_ground_truth": ("salx.postprocess.ground_truth", "load_ground_truth"),
    "Detections": ("salx.postprocess.detections", "Detections"),
    "load_official_checkpoint": ("salx.methods.sal.convert", "load_official_checkpoint"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'salx' has no attribute {name!r}")
  module, attribute = _EXPORTS[name]
  value = getattr(importlib.import_module(module), attribute)
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
