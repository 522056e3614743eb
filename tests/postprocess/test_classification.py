"""Unit tests of salx.postprocess.classification (SPEC 3.3)."""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import classification
from salx.postprocess import ground_truth as gt_lib
from salx.postprocess import localization
from salx.postprocess import scores


def test_accuracy_counts_the_predicted_classes_after_the_argmax_fallback():
  s = np.array([[0.2, 0.7], [0.6, 0.1], [0.2, 0.22]])
  labels = np.array([[0, 1], [1, 1], [0, 1]])
  predicted = scores.predict_classes(s, 0.25)
  # Video 3: no class reaches 0.25, so it predicts its argmax (class 1), its label.
  assert predicted[2].tolist() == [False, True]
  assert classification.classification_accuracy(predicted, labels) == pytest.approx(2 / 3)


def test_localized_video_below_class_thresh_counts_as_its_argmax_class():
  # Flat cas and equal logits but one: every score is below class_thresh = 0.25
  # with 20 classes, and the argmax is class 7.
  c, t = 20, 64
  logits = np.zeros((1, c))
  logits[0, 7] = 0.5
  out = localization.localize(np.zeros((1, t, c)), np.full((1, t), 0.5),
                              np.full((1, t), 0.5), logits, None, [t],
                              sal_hparams.THUMOS14, video_names=["v"],
                              class_names=[str(i) for i in range(c)])
  assert out.video_scores.max() < sal_hparams.THUMOS14.class_thresh
  labels = np.eye(c)[[7]]
  assert classification.classification_accuracy(out.predicted, labels) == 1.0
  assert classification.classification_accuracy(out.predicted, np.eye(c)[[3]]) == 0.0


def test_video_labels_and_shape_check():
  gt = gt_lib.load_ground_truth({"database": {
      "v1": {"subset": "test", "annotations": [{"label": "B", "segment": [0, 1]}]},
      "v2": {"subset": "test", "annotations": [{"label": "A", "segment": [0, 1]},
                                               {"label": "B", "segment": [2, 3]}]}}})
  assert classification.video_labels(gt, ["v2", "v1"], ["A", "B", "C"]).tolist() == [
      [True, True, False], [False, True, False]]
  with pytest.raises(ValueError, match="video v9 is not in"):
    classification.video_labels(gt, ["v9"], ["A", "B"])
  with pytest.raises(ValueError, match="differ in shape"):
    classification.classification_accuracy(np.zeros((2, 3), bool), np.zeros((2, 2)))
