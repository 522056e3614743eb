"""Evaluation of params on a split: the method's forward on the mesh, then its
localization, AP and classification accuracy on the host.

Each batch of model outputs goes to the method's `localize` with its valid
lengths; the detections of all batches are scored by
`salx.postprocess.ap.evaluate_detections`, the path `python -m salx.evaluate`
takes from a predictions file.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import report
from salx.app import scoring
from salx.core import members as core_members
from salx.core import progress_bar
from salx.core import sharding
from salx.datasets import input_pipeline
from salx.datasets import protocol_ground_truth as protocol_ground_truth_lib
from salx.datasets import source as source_lib
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess import protocols
from salx.postprocess.detections import Detections


def _to_host(tree: Any) -> Any:
  """NumPy copies of (possibly multi-host) arrays, whole on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _full_batch_on_mesh(x: np.ndarray, mesh) -> jax.Array:
  """A global array, batch-sharded, from a batch every process holds whole."""
  return jax.make_array_from_callback(x.shape, sharding.batch_sharded(mesh),
                                      lambda index: x[index])


def protocol_ground_truth(protocol: str, source, path: Optional[str] = None):
  """The ground truth `protocol` scores against: from `path`, else the data's own
  annotations (their test subset)."""
  if path:
    return protocol_ground_truth_lib.load_ground_truth(protocol, path)
  if protocol == protocols.THUMOS14_OFFICIAL.name:
    raise ValueError("the thumos14_official protocol reads the official per-class "
                     "annotation folder: set config.protocol_ground_truth.thumos14_official")
  return dataclasses.replace(
      ground_truth_lib.load_ground_truth(source.ground_truth(), "test"),
      source=source.annotation_file)


def holdout_protocol(protocol: str) -> str:
  """The protocol of the held-out training videos: the test protocol's rules, or
  activitynet's where those need the official test annotations."""
  return protocols.ACTIVITYNET.name if protocol == protocols.THUMOS14_OFFICIAL.name \
      else protocol


class SplitEvaluator:
  """Runs a split's videos through the members' model and scores their detections.

  The model runs on padded, masked batches of `eval_batch_size` videos sharded
  over the mesh (one shape, one compilation): each video resampled to the
  method's T, or whole when the method keeps test videos whole (T = the longest
  video of the split). With `cache_data` the test inputs stay on the devices after
  the first evaluation. Every process reads every test video and computes the same
  metrics: the checkpoint decisions of all processes must agree.
  """

  def __init__(self, method, model, source: source_lib.FeatureSource, hp,
               config: ml_collections.ConfigDict, mesh, *, protocol: str = "",
               ground_truth_path: Optional[str] = None):
    """The evaluator of `source`'s test split.

    Args:
      hp: the hyperparameters of member 0 (the shared, static ones are read).
      protocol: the evaluation protocol; default config.protocol.
      ground_truth_path: the protocol's ground truth (the official per-class
        folder, W-TALC annotations, a gt.json); '': the data's own annotations;
        None: `config.protocol_ground_truth` of the protocol.
    """
    self.method, self.source, self.hp, self.mesh = method, source, hp, mesh
    self.class_names = tuple(source.class_names)
    self.sampling = method.eval_sampling(hp)
    if method.eval_keeps_whole_videos(hp):
      self.num_segments = max(source.num_snippets("test", n)
                              for n in source.video_names("test"))
      self.keep_all_if_shorter = True
    else:
      self.num_segments = method.num_segments(hp)
      self.keep_all_if_shorter = config.eval_keep_all_if_shorter
    self.cache = config.cache_data
    self._cached_batches = None
    devices = mesh.devices.size
    # No larger than the split: padding past its last video is memory for nothing.
    wanted = min(config.eval_batch_size, max(1, len(source.video_names("test"))))
    self.batch_size = -(-wanted // devices) * devices
    self.protocol = protocol or config.protocol
    if ground_truth_path is None:
      ground_truth_path = config.protocol_ground_truth[self.protocol]
    self.ground_truth = protocol_ground_truth(self.protocol, source, ground_truth_path)
    ambiguous = (None if not config.ambiguous_file else
                 ground_truth_lib.load_ambiguous(config.ambiguous_file))
    evaluated = set(getattr(self.ground_truth, "instances", self.ground_truth).class_names)
    self.unevaluated = np.asarray([i for i, c in enumerate(self.class_names)
                                   if c not in evaluated], np.int64)
    self.scorer = scoring.Scorer(method, self.ground_truth, self.class_names,
                                 self.unevaluated, self.protocol, ambiguous)
    if self.unevaluated.size:
      logging.warning("Classes without instances in the test split are not "
                      "evaluated; their detections are dropped: %s",
                      [self.class_names[i] for i in self.unevaluated])
    self.members_forward = sharding.jit_members_eval_forward(
        core_members.make_members_eval_forward(method, model), mesh)

  def batches(self) -> Iterator[Tuple[Dict[str, np.ndarray], jax.Array, jax.Array]]:
    """(host batch, features [B, T, D], mask [B, T] on the mesh) of the test split."""
    if self._cached_batches is not None:
      yield from self._cached_batches
      return
    batches = []
    for batch in input_pipeline.eval_batches(
        self.source, num_segments=self.num_segments, batch_size=self.batch_size,
        keep_all_if_shorter=self.keep_all_if_shorter, split="test",
        sampling=self.sampling):
      item = ({k: batch[k] for k in ("names", "num_snippets", "labels", "valid", "mask")},
              _full_batch_on_mesh(batch["features"], self.mesh),
              _full_batch_on_mesh(batch["mask"], self.mesh))
      if self.cache:
        batches.append(item)
      yield item
    if self.cache:
      self._cached_batches = batches

  def members_outputs(self, params, stacked_hp) -> List[scoring.HostBatch]:
    """Every batch's (host batch, members' outputs [K, B, ...] on the host): one
    forward over all members per batch."""
    num_videos = len(self.source.video_names("test"))
    batches = progress_bar.track(self.batches(), total=-(-num_videos // self.batch_size),
                                 label=f"evaluating {num_videos} videos", unit="batches")
    return [(batch, _to_host(self.members_forward(params, features, mask, stacked_hp)))
            for batch, features, mask in batches]

  def evaluate_members(self, params, stacked_hp, member_hparams: Sequence[Any],
                       step: int) -> List[Tuple[report.Record, Detections]]:
    """(record, detections) of each of K members: one forward over all members per
    batch, then each member's localization with its own hyperparameters.

    Args:
      params: the members' params [K, ...] on the mesh.
      stacked_hp: the members' hyperparameters, leaves [K], on the mesh.
      member_hparams: the K members' hyperparameters (Python floats, for the host).
    """
    outputs = self.members_outputs(params, stacked_hp)
    return [self.scorer(scoring.member_batches(outputs, m), hp, step)
            for m, hp in enumerate(member_hparams)]
