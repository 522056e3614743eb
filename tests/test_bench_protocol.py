"""bench_protocol feeds the trainer's exact batches without TensorFlow."""

import pathlib
import sys

import numpy as np

from salx.datasets import input_pipeline
from salx.datasets import layouts, synthesis

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
import bench_protocol  # noqa: E402  pylint: disable=wrong-import-position


def test_numpy_batches_equal_the_input_pipelines(tmp_path):
  spec = synthesis.SyntheticSpec(num_train=6, num_test=2, min_length=60, max_length=90,
                                 feature_dim=64)
  folder = synthesis.make_synthetic_dataset(tmp_path / "data", spec)
  source = layouts.open_source(folder, "thumos14", feature_dim=64)
  videos = [source.load("train", name) for name in source.video_names("train")]
  ours = list(bench_protocol.train_batches(videos, 3, 0, 7))
  trainer = list(input_pipeline.train_batches(source, batch_size=2, num_segments=750,
                                              seed=3, start_step=0, num_steps=7))
  assert len(ours) == len(trainer) == 7
  for (_, a), b in zip(ours, trainer):
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
