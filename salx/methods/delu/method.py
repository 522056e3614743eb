"""DELU as a salx method (docs/co2net_delu.md): CO2-Net's model, sampler and
inference, with the evidential and uncertainty-guided loss terms on
(SPEC-CO2NET-DELU 2.7, 2.8, 7) and single-snippet detections dropped (5.6).

    from salx.methods.delu.method import DELU_METHOD
    hp = DELU_METHOD.presets["thumos14"]
"""

from __future__ import annotations

from salx.methods.co2net import hparams as co2net_hparams
from salx.methods.co2net.method import CO2NetMethod


class DELUMethod(CO2NetMethod):
  """DELU: dual-evidential learning (ECCV 2022)."""
  name = "delu"
  presets = {"thumos14": co2net_hparams.DELU_THUMOS14}
  title = "DELU"


DELU_METHOD = DELUMethod()
