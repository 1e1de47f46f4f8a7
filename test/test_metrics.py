"""Confusion matrix metrics on constructed cases with known answers."""

import numpy as np
import pytest

from bisenet_ros.evaluation.metrics import ConfusionMatrix


def test_known_confusion_matrix_and_scores():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 3, 0], [1, 0, 1]])
    scores = cm.scores()
    np.testing.assert_allclose(scores.iou, [1 / 3, 3 / 4, 1 / 2])
    assert scores.miou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(5 / 7)
    assert scores.pixels == 7


def test_out_of_range_predictions_count_as_errors():
    cm = ConfusionMatrix(2, ignore_index=None)
    cm.update(np.array([0, 9]), np.array([0, 1]))
    scores = cm.scores()
    assert scores.pixel_accuracy == pytest.approx(0.5)
    assert scores.iou[1] == 0.0


def test_absent_class_is_nan_and_excluded_from_miou():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(np.zeros((2, 2), int), np.zeros((2, 2), int))
    scores = cm.scores()
    assert scores.iou[0] == 1.0 and np.isnan(scores.iou[1:]).all()
    assert scores.miou == 1.0
    assert scores.as_dict(['a', 'b', 'c'])['iou'] == {'a': 1.0, 'b': None, 'c': None}


def test_merge_equals_single_update():
    rng = np.random.default_rng(0)
    p, t = rng.integers(0, 4, (2, 50)), rng.integers(0, 4, (2, 50))
    whole, a, b = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    whole.update(p, t)
    a.update(p[0], t[0])
    b.update(p[1], t[1])
    a.merge(b)
    np.testing.assert_array_equal(a.matrix, whole.matrix)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match=r'prediction shape \(2,\) != target shape \(3,\)'):
        ConfusionMatrix(2).update(np.zeros(2), np.zeros(3))
