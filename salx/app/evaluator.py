"""Evaluation of params on the test split: model forward on the mesh, then
localization and AP on the host (SPEC 3-5)."""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Dict, Iterator, Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import report
from salx.core import model as model_lib
from salx.core import sharding
from salx.core import train_step as train_step_lib
from salx.core import variants
from salx.datasets import input_pipeline
from salx.postprocess import evaluation
from salx.postprocess import inference
from salx.postprocess import localization
from salx.datasets import source


def _to_host(tree: Any) -> Any:
  """NumPy copies of (possibly multi-host) arrays, whole on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _full_batch_on_mesh(x: np.ndarray, mesh) -> jax.Array:
  """A global array, batch-sharded, from a batch every process holds whole."""
  return jax.make_array_from_callback(x.shape, sharding.batch_sharded(mesh),
                                      lambda index: x[index])


class TestEvaluator:
  """Runs the test split through the model and scores the detections (SPEC 3, 5).

  The model runs on padded, masked batches of `eval_batch_size` videos sharded
  over the mesh (one shape, one compilation); with `cache_data` the sampled test
  inputs stay on the devices after the first evaluation. Every process reads every
  test video and computes the same metrics: the checkpoint decisions of all
  processes must agree.
  """

  def __init__(self, model: model_lib.SAL, source: source.FeatureSource,
               variant: variants.Variant, config: ml_collections.ConfigDict, mesh):
    self.source, self.variant, self.mesh = source, variant, mesh
    self.class_names = tuple(source.class_names)
    self.num_segments = config.num_segments
    self.keep_all_if_shorter = config.eval_keep_all_if_shorter
    self.cache = config.cache_data
    self._cached_batches = None
    devices = mesh.devices.size
    self.batch_size = -(-config.eval_batch_size // devices) * devices
    self.ground_truth = dataclasses.replace(
        evaluation.load_ground_truth(source.ground_truth(), "test"),
        source=source.annotation_file)
    evaluated = set(self.ground_truth.class_names)
    self.unevaluated = np.asarray([i for i, c in enumerate(self.class_names)
                                   if c not in evaluated], np.int64)
    if self.unevaluated.size:
      logging.warning("Classes without instances in the test split are not "
                      "evaluated; their detections are dropped: %s",
                      [self.class_names[i] for i in self.unevaluated])
    forward = train_step_lib.make_eval_forward(model)

    def outputs(params, features, mask):
      """[B, T, C] cas, [B, T] actionness per stream, [B, C] video logits, float32."""
      o = forward(params, features, mask)
      return {k: v.astype(jnp.float32) for k, v in (
          ("cas", o.cas), ("action_flow", o.action_flow),
          ("action_rgb", o.action_rgb), ("video_logits", o.video_logits))}

    self.forward = sharding.jit_eval_forward(outputs, mesh)

  def batches(self) -> Iterator[Tuple[Dict[str, np.ndarray], jax.Array, jax.Array]]:
    """(host batch, features [B, T, D], mask [B, T] on the mesh) of the test split."""
    if self._cached_batches is not None:
      yield from self._cached_batches
      return
    batches = []
    for batch in input_pipeline.eval_batches(
        self.source, num_segments=self.num_segments, batch_size=self.batch_size,
        keep_all_if_shorter=self.keep_all_if_shorter, split="test",
        sampling=self.variant.sampling):
      item = ({k: batch[k] for k in ("names", "num_snippets", "labels", "valid", "mask")},
              _full_batch_on_mesh(batch["features"], self.mesh),
              _full_batch_on_mesh(batch["mask"], self.mesh))
      if self.cache:
        batches.append(item)
      yield item
    if self.cache:
      self._cached_batches = batches

  def localize(self, params) -> Tuple[Dict[str, localization.VideoLocalization],
                                      np.ndarray]:
    """({video: VideoLocalization} of the test split, [N, C] labels)."""
    per_video, labels = {}, []
    for batch, features, mask in self.batches():
      out = _to_host(self.forward(params, features, mask))
      per_video.update(inference.per_video_outputs(
          types.SimpleNamespace(**out), batch["names"], batch["num_snippets"],
          valid_lengths=batch["mask"].sum(axis=1), valid=batch["valid"]))
      labels.append(batch["labels"][batch["valid"]])
    localized = localization.localize_batch(per_video, self.variant, self.class_names)
    if self.unevaluated.size:
      localized = {name: dataclasses.replace(loc, proposals=loc.proposals.take(
          ~np.isin(loc.proposals.class_index, self.unevaluated)))
                   for name, loc in localized.items()}
    return localized, np.concatenate(labels)

  def __call__(self, params, step: int
               ) -> Tuple[report.Record, Dict[str, localization.VideoLocalization]]:
    """(evaluation record, {video: VideoLocalization}) of `params` at `step`."""
    localized, labels = self.localize(params)
    predictions = dataclasses.replace(
        inference.predictions_of(localized, self.ground_truth, self.class_names),
        source=f"of step {step}")
    result = evaluation.evaluate_detections(self.ground_truth, predictions,
                                            self.variant.tiou_thresholds)
    accuracy = evaluation.classification_accuracy(
        inference.video_scores(localized), labels, self.variant.class_thresh)
    return report.evaluation_record(result, accuracy, step, len(localized)), localized
