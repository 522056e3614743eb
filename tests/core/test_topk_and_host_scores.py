"""The selection score and top-k mean agree between the device (JAX) and host (NumPy) code.

Training ranks snippets with `salx.core.scores` inside the jitted step; localization
ranks them on the host with `salx.postprocess.scores`, its NumPy twin. Both must compute
the same SPEC quantities.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from salx.postprocess import scores as host_scores
from salx.core import topk as scores
from salx.methods.sal import hparams as sal_hparams


@pytest.mark.parametrize("variant", [sal_hparams.THUMOS14, sal_hparams.ACTIVITYNET])
def test_combined_score_and_topk_mean_agree(variant):
  rng = np.random.default_rng(0)
  cas = rng.normal(size=(3, 50, 6))
  flow, rgb = rng.uniform(size=(3, 50)), rng.uniform(size=(3, 50))
  host = host_scores.combined_score(cas, flow, rgb, variant.combine_weights)
  device = scores.combined_score(jnp.asarray(cas, jnp.float32), jnp.asarray(flow, jnp.float32),
                                 jnp.asarray(rgb, jnp.float32), variant.combine_weights)
  np.testing.assert_allclose(device, host, rtol=1e-6)
  k = variant.inference_topk(50)
  np.testing.assert_allclose(
      scores.topk_mean(jnp.asarray(cas, jnp.float32), jnp.asarray(host, jnp.float32), k),
      host_scores.topk_mean(cas, host, k), rtol=1e-5)
