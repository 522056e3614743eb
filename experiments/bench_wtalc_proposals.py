"""Time CO2-Net/DELU proposals: salx's vectorized pipeline against a Python loop.

  python experiments/bench_wtalc_proposals.py [--videos 212] [--thresholds 20] [--repeats 3]

Builds THUMOS14-like synthetic outputs (T from 50 to 2000 snippets, C + 1 = 21
columns; attention high on ~15 action instances per video, noisy, low
elsewhere; cas boosted on one or two classes inside the instances), then runs

  * `salx.postprocess.wtalc_proposals.propose` (vectorized), and
  * `loop_proposals` below: the authors' structure (SPEC-CO2NET-DELU 5.2-5.5)
    written from the spec, a Python loop over videos, thresholds, classes and
    runs, and their row-swapping soft-NMS per class,

checks that both give the same rows (same count and order, scores within
1e-9) and prints one line

  wtalc_proposals videos=V loop_s=X vectorized_s=Y speedup=Zx equal=yes

with the medians of `--repeats` timed runs of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from salx.postprocess import wtalc_proposals  # noqa: E402


def synthetic_outputs(num_videos: int, num_columns: int = 21,
                      seed: int = 0) -> Tuple[List[np.ndarray], List[np.ndarray]]:
  """THUMOS14-like cas [T, C+1] logits and attention [T] of `num_videos` videos."""
  rng = np.random.default_rng(seed)
  cas, attn = [], []
  for _ in range(num_videos):
    t = int(rng.integers(50, 2001))
    classes = rng.choice(num_columns - 1, size=int(rng.integers(1, 3)), replace=False)
    action = np.zeros(t)
    label = np.zeros((t, num_columns))
    for _ in range(max(1, int(rng.poisson(15 * t / 1000 + 2)))):
      length = int(rng.integers(2, 40))
      s = int(rng.integers(0, max(1, t - length)))
      action[s:s + length] = 1.0
      label[s:s + length, rng.choice(classes)] = 1.0
    # Smoothed noisy logit: runs break up at the upper thresholds.
    logit = 5.0 * action - 2.5 + rng.normal(0, 1.2, t)
    logit = np.convolve(logit, np.ones(3) / 3, mode="same")
    attn.append(1 / (1 + np.exp(-logit)))
    c = rng.normal(0, 1, (t, num_columns)) + 3.0 * label
    c[:, -1] += 2.0 * (1 - action)
    cas.append(c)
  return cas, attn


# --------------------------------------------------------------------------------
# The loop reference: per video, per threshold, per class, per run (their style).


def _grouping(arr):
  return np.split(arr, np.where(np.diff(arr) != 1)[0] + 1)


def _soft_nms(dets, sigma=0.3):
  dets = np.array(dets)
  areas = dets[:, 3] - dets[:, 2] + 1
  dets = np.concatenate((dets, areas[:, None]), axis=1)
  retained = []
  while dets.size > 0:
    max_idx = np.argmax(dets[:, 1], axis=0)
    dets[[0, max_idx], :] = dets[[max_idx, 0], :]
    retained.append(dets[0, :-1].tolist())
    xx1 = np.maximum(dets[0, 2], dets[1:, 2])
    xx2 = np.minimum(dets[0, 3], dets[1:, 3])
    inter = np.maximum(xx2 - xx1 + 1, 0.0)
    iou = inter / (dets[0, -1] + dets[1:, -1] - inter)
    weight = np.exp(-(iou * iou) / sigma)
    dets[1:, 1] *= weight
    dets = dets[1:, :]
  return retained


def loop_proposals(cas, attn, num_thresholds, class_threshold=0.2, lambda_=0.25,
                   gamma=0.2, sigma=0.3):
  """Rows [t-start, t-end, score, class] of each video, in the authors' order."""
  act_thresh = np.linspace(0.1, 0.9, num_thresholds)
  out = []
  for c_all, a in zip(cas, attn):
    ec = c_all * a[:, None]
    k = max(1, ec.shape[0] // 10)
    top = np.mean(np.sort(ec, axis=0)[::-1][:k], axis=0)
    e = np.exp(top - top.max())
    p = (e / e.sum())[:-1]
    pred = np.where(p >= class_threshold)[0]
    if len(pred) == 0:
      pred = np.array([np.argmax(p)])
    wtcam = ec[:, pred]
    proposal_dict = {}
    for th in act_thresh:
      temp_list = np.where(a > th)[0]
      if not temp_list.any():
        continue
      groups = _grouping(temp_list)
      for i, c in enumerate(pred):
        for g in groups:
          inner = np.mean(wtcam[g, i])
          n = len(g)
          outer_s = max(0, int(g[0] - lambda_ * n))
          outer_e = min(int(wtcam.shape[0] - 1), int(g[-1] + lambda_ * n))
          outer_list = list(range(outer_s, int(g[0]))) + list(range(int(g[-1] + 1), outer_e + 1))
          outer = 0 if len(outer_list) == 0 else np.mean(wtcam[outer_list, i])
          score = inner - outer + gamma * p[c]
          proposal_dict.setdefault(c, []).append([c, score, g[0], g[-1] + 1])
    rows = []
    for c in proposal_dict:
      for c_pred, c_score, t_start, t_end in _soft_nms(proposal_dict[c], sigma):
        rows.append([t_start, t_end, c_score, c_pred])
    out.append(np.asarray(rows, np.float64).reshape(-1, 4))
  return out


def vectorized_proposals(cas, attn, num_thresholds):
  proposals = wtalc_proposals.propose(cas, attn, num_thresholds=num_thresholds)
  rows = np.stack([proposals.start, proposals.end, proposals.score,
                   proposals.label.astype(np.float64)], axis=1)
  bounds = np.searchsorted(proposals.video, np.arange(len(cas) + 1))
  return [rows[bounds[v]:bounds[v + 1]] for v in range(len(cas))]


def _equal(a, b) -> bool:
  return len(a) == len(b) and all(
      x.shape == y.shape and np.array_equal(x[:, [0, 1, 3]], y[:, [0, 1, 3]])
      and (x.size == 0 or np.max(np.abs(x[:, 2] - y[:, 2])) <= 1e-9) for x, y in zip(a, b))


def _median_time(fn, repeats):
  times, result = [], None
  for _ in range(repeats):
    t = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), result


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--videos", type=int, default=212)
  parser.add_argument("--thresholds", type=int, default=wtalc_proposals.DELU_NUM_THRESHOLDS)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  cas, attn = synthetic_outputs(args.videos, seed=args.seed)
  vectorized_proposals(cas, attn, args.thresholds)  # warm-up
  vec_s, vec = _median_time(lambda: vectorized_proposals(cas, attn, args.thresholds),
                            args.repeats)
  loop_s, loop = _median_time(lambda: loop_proposals(cas, attn, args.thresholds),
                              args.repeats)
  equal = "yes" if _equal(loop, vec) else "no"
  print(f"wtalc_proposals videos={args.videos} loop_s={loop_s:.3f} "
        f"vectorized_s={vec_s:.3f} speedup={loop_s / vec_s:.1f}x equal={equal}")


if __name__ == "__main__":
  main()
