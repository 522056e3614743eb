"""The core and postprocess tiers import and run with the app's libraries absent.

A fresh interpreter refuses every import of TensorFlow, TFDS, clu, ml_collections and
Orbax, and every import of absl made by salx itself (optax imports absl on its own),
then builds the model, runs one jitted train step, localizes and evaluates.
"""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import importlib.util
    import os
    import sys
    import traceback

    # salx's own files, by the package's real location (a clone's path may itself
    # contain "salx", and so may every installed package's).
    SALX_DIR = os.path.realpath(
        importlib.util.find_spec("salx").submodule_search_locations[0]) + os.sep

    BLOCKED = {"tensorflow", "tensorflow_datasets", "clu", "ml_collections", "orbax"}

    class Refuse:
      def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED:
          raise ImportError(f"{name} is made unimportable")
        if top == "absl":
          importer = sys._getframe(1)
          while importer and "importlib" in importer.f_code.co_filename:
            importer = importer.f_back
          if importer and os.path.realpath(
              importer.f_code.co_filename).startswith(SALX_DIR):
            raise ImportError(f"salx imports {name}")
        return None

    sys.meta_path.insert(0, Refuse())

    import jax
    import numpy as np
    from salx.core import train_step
    from salx.methods.sal.method import SAL_METHOD
    from salx.postprocess import ap, ground_truth

    hp = SAL_METHOD.presets["thumos14"].replace(num_segments=32, hidden_dim=8)
    model = SAL_METHOD.build_model(hp, num_classes=3, feature_dim=16)
    state = train_step.create_train_state(SAL_METHOD, model, hp, jax.random.key(0),
                                          input_shape=(2, 32, 16))
    step = jax.jit(train_step.make_train_step(SAL_METHOD, model))
    batch = {"features": np.random.default_rng(0).normal(size=(2, 32, 16)).astype("f4"),
             "labels": np.eye(3, dtype="f4")[[0, 2]]}
    state, metrics = step(state, batch, jax.random.key(1), hp)
    assert np.isfinite(float(metrics["loss"])), metrics
    print("step", int(state.step), float(metrics["loss"]))
    forward = jax.jit(train_step.make_eval_forward(SAL_METHOD, model))
    out = {k: np.asarray(v) for k, v in
           forward(state.params, batch["features"], None, hp).items()}
    localized = SAL_METHOD.localize(
        out, None, np.asarray([40, 60]), hp,
        video_names=["a", "b"], class_names=["x", "y", "z"])
    gt = ground_truth.load_ground_truth({"database": {
        "a": {"subset": "test", "annotations": [{"label": "x", "segment": [1.0, 5.0]}]},
        "b": {"subset": "test", "annotations": [{"label": "z", "segment": [2.0, 9.0]},
                                                {"label": "y", "segment": [3.0, 4.0]}]}}},
        "test")
    result = ap.evaluate_detections(gt, localized.detections,
                                    SAL_METHOD.tiou_thresholds(hp))
    assert len(localized.detections) > 0 and 0 <= result.average_mAP <= 1
    print("detections", len(localized.detections))
    loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    assert not loaded, loaded
    print("ok")
''')


@pytest.mark.slow
def test_core_trains_a_step_with_the_app_libraries_unimportable():
  out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.splitlines()[-1] == "ok"
  assert out.stdout.splitlines()[0].startswith("step 1 ")
