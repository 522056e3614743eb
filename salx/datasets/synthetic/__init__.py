"""The synthetic dataset generator: I3D-like feature datasets in any of the real layouts.

Two uses:
  - the demo dataset (`SyntheticSpec()` defaults): 5 classes, 60 train and 30 test
    videos of 100-300 snippets, 2048-d features (~130 MB on disk), on which a small
    SAL model learns to localize within minutes on a CPU;
  - a stand-in for a real benchmark: with `annotations=` (an ActivityNet-style
    gt.json), the dataset copies the real videos, their lengths
    (L = floor(duration * 25 / 16)) and their instances, and only the features are
    synthetic. Useful to exercise the full pipeline and the three layouts without the
    real features.

How a video's features are made ([L, D], the first D/2 dims "RGB", the rest "flow"):
  features = feature_scale * (background + noise + action + context + scene)
  - background: a blend of two of `num_background_patterns` random patterns that
    drifts from one to the other at a random time, so backgrounds vary per video;
  - noise: per-dim Gaussian with std `noise_std`, smoothed in time by an AR(1)
    process with coefficient `noise_smoothness`;
  - action: the class prototype times the instance envelope (the fraction of each
    snippet the instance covers, times a per-instance strength in
    1 +- `instance_strength_jitter`), amplitude `action_strength` in flow and
    `action_strength * rgb_action_ratio` in RGB. Prototypes of different classes share
    a fraction `class_similarity` of their energy;
  - context (confusion near actions): the same class prototype, fading linearly over
    `context_length` snippets on both sides of every instance, amplitude
    `context_strength` in RGB and `context_strength * context_flow_ratio` in flow;
  - scene: a class-specific RGB vector present in every snippet of a video that
    contains the class, amplitude `scene_strength` (a shortcut for classification
    that does not localize).
All patterns have unit RMS per dim, so amplitudes compare directly with `noise_std`.
Generation is deterministic for a seed, and each video depends only on the seed and
its own name and index, not on how many videos are made.

Difficulty: `SyntheticSpec()` is the demo dataset (`configs/synthetic.py`, whose
docstring gives the numbers measured with salx's SAL: average mAP(0.1:0.7) 0.60-0.64
after 300 steps for seeds 0-7, the untrained model below 0.02). With half its
`action_strength` and twice its `background_strength` (0.5 / 1.0), SAL's actionness
self-training locks onto the background patterns for some seeds (0.02 to 0.64 over
seeds 0-3 at T 256). To make it harder, lower `action_strength` or raise
`noise_std`; `context_strength` blurs boundaries (hurts high tIoU);
`short_instance_prob` adds instances shorter than a few snippets; `scene_strength`
rewards whole-video (non-localizing) evidence.

The package, one job per module: `plans` (SyntheticSpec, which videos and instances),
`copies` (plans copied from a real annotation file), `features` (the features of a
plan), `folder` (writing a dataset folder atomically). Its names are importable from
here; the command line is `python -m salx.datasets.synthetic`.
"""

from salx.datasets.synthetic.copies import plan_from_annotations
from salx.datasets.synthetic.copies import read_video_durations
from salx.datasets.synthetic.features import class_prototypes
from salx.datasets.synthetic.features import estimated_size_bytes
from salx.datasets.synthetic.features import generate_records
from salx.datasets.synthetic.features import render_features
from salx.datasets.synthetic.folder import make_synthetic_dataset
from salx.datasets.synthetic.folder import PROVENANCE_FILE
from salx.datasets.synthetic.folder import write_plans
from salx.datasets.synthetic.plans import FIELD_HELP
from salx.datasets.synthetic.plans import plan_synthetic_videos
from salx.datasets.synthetic.plans import SPLIT_CODES
from salx.datasets.synthetic.plans import synthetic_class_names
from salx.datasets.synthetic.plans import SyntheticSpec
from salx.datasets.synthetic.plans import VideoPlan

__all__ = [
    "FIELD_HELP", "PROVENANCE_FILE", "SPLIT_CODES", "SyntheticSpec", "VideoPlan",
    "class_prototypes", "estimated_size_bytes", "generate_records",
    "make_synthetic_dataset", "plan_from_annotations", "plan_synthetic_videos",
    "read_video_durations", "render_features", "synthetic_class_names", "write_plans",
]
