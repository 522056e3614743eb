"""CO2-Net and DELU hyperparameters as one pytree dataclass, and their presets.

DELU is CO2-Net's code with two loss terms added (SPEC-CO2NET-DELU 7), so one
dataclass serves both: `evidential` switches DELU's terms on (SPEC-CO2NET-DELU 2.7,
2.8), so that CO2-Net does not pay for them. Fields annotated `float` are pytree
leaves that members `jax.vmap` over (learning rate, decay, loss weights, the
curriculum amplitude); everything else fixes shapes or control flow and is static.

    hp = hparams_lib.DELU_THUMOS14
    total, terms = losses.co2net_loss(outputs, labels, hp, itr)
"""

from __future__ import annotations

from typing import Tuple

from salx.core import hparams


@hparams.pytree_dataclass
class CO2NetHparams:
  """Every setting of CO2-Net / DELU training and inference (SPEC-CO2NET-DELU 0).

  Attributes:
    learning_rate: Adam's learning rate (SPEC-CO2NET-DELU 3.1).
    weight_decay: coupled L2 decay of Adam (3.1).
    alpha1: weight of the norm (sparsity) loss N (2.5).
    alpha2: weight of the guide loss G (2.6): 0.8 CO2-Net, 0.4 DELU.
    alpha3: weight of the co-activity contrastive loss (2.3).
    alpha4: weight of the mutual (cross-modal consistency) loss (2.4).
    alpha_edl: weight of DELU's video-level evidential loss (2.7).
    alpha_uct_guide: weight of DELU's uncertainty-guided loss (2.8).
    amplitude: amplitude of DELU's curriculum curve (2.8.2).
    dropout_ratio: dropout of the fusion and classifier layers (1.4; the CCMs'
      0.5 is fixed by the code). Static: a rate decides the mask computation.
    attention_hidden: H, the width of each CCM's attention head (1.2.5).
    max_seqlen: training T, every video resampled to it (4.3).
    mil_topk_divisor: k of the MIL top-k, max(1, T // k) snippets (2.2).
    rat_atn: divisor of DELU's attention top-k, max(1, T // rat_atn) (2.7.1).
    max_iter: the curriculum's length in iterations (2.8.2; their scripts train
      that many iterations too, 3.3: `config.num_steps`).
    num_similar: same-class pairs at the head of each batch (4.2).
    evidential: DELU's two terms on (2.7, 2.8) or off (CO2-Net).
    num_thresholds: attention thresholds linspace(0.1, 0.9, N) (5.3).
    cls_topk_divisor: class scores from the top max(1, L // 10) of cas * attn (5.2).
    class_threshold: predicted classes have p_c >= 0.2 (5.2).
    oic_outer_ratio: outer margin of the OIC score, 0.25 n (5.4).
    gamma_oic: weight of the class score in a proposal's score (5.4).
    soft_nms_sigma: sigma of the Gaussian soft-NMS (5.5).
    length_filter: drop single-snippet detections (DELU only, 5.6).
    feature_fps, frames_per_segment: 25 fps, 16 frames per snippet (5.8).
    tiou_thresholds: evaluation tIoU thresholds (6.1).
  """
  learning_rate: float = 5e-5
  weight_decay: float = 1e-3
  alpha1: float = 0.8
  alpha2: float = 0.8
  alpha3: float = 1.0
  alpha4: float = 1.0
  alpha_edl: float = 0.0
  alpha_uct_guide: float = 0.0
  amplitude: float = 0.7
  dropout_ratio: float = hparams.static(default=0.7)
  attention_hidden: int = 512
  max_seqlen: int = 500
  mil_topk_divisor: int = 7
  rat_atn: int = 9
  max_iter: int = 5000
  num_similar: int = 3
  evidential: bool = False
  num_thresholds: int = 10
  cls_topk_divisor: int = 10
  class_threshold: float = hparams.static(default=0.2)
  oic_outer_ratio: float = hparams.static(default=0.25)
  gamma_oic: float = hparams.static(default=0.2)
  soft_nms_sigma: float = hparams.static(default=0.3)
  length_filter: bool = False
  feature_fps: int = 25
  frames_per_segment: int = 16
  tiou_thresholds: Tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

  def mil_topk(self, num_segments: int) -> int:
    """k of the MIL top-k for a batch of T snippets: max(1, T // 7) (SPEC-CO2NET-DELU 2.2)."""
    return max(1, int(num_segments // self.mil_topk_divisor))

  def edl_topk(self, num_segments: int) -> int:
    """k_e of DELU's attention top-k: max(1, T // rat_atn) (SPEC-CO2NET-DELU 2.7.1)."""
    return max(1, int(num_segments // self.rat_atn))


# `run.sh` of harlanhong/MM2021-CO2-Net (SPEC-CO2NET-DELU 0); its run settings
# (batch 10, seed 3552, 5000 iterations, a test every 200) are in
# configs/co2net_thumos.py.
CO2NET_THUMOS14 = CO2NetHparams()

# `scripts/train_thumos.sh` and `test_thumos.sh` of MengyuanChen21/ECCV2022-DELU
# (SPEC-CO2NET-DELU 0, 7); run settings (seed 0, a test every 50) in
# configs/delu_thumos.py.
DELU_THUMOS14 = CO2NetHparams(
    alpha2=0.4, alpha_edl=1.3, alpha_uct_guide=0.4, amplitude=0.7,
    max_seqlen=320, evidential=True, num_thresholds=20,
    length_filter=True)
