"""OHEM cross-entropy: threshold, minimum kept pixels, ignore label."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bisenet_ros.training.loss import enet_class_weights, OhemCrossEntropy


def _logits_with_true_prob(probs, num_classes=3):
    """(1, C, 1, N) logits whose class-0 softmax probability is each value of ``probs``."""
    p = torch.tensor(probs, dtype=torch.float64)
    rest = (1 - p) / (num_classes - 1)
    logits = torch.stack([p.log()] + [rest.log()] * (num_classes - 1))
    return logits.view(1, num_classes, 1, -1).float()


def test_threshold_is_minus_log_prob():
    assert OhemCrossEntropy(0.7).loss_thresh == pytest.approx(-math.log(0.7))


def test_averages_only_pixels_below_the_probability_threshold():
    probs = [0.95, 0.9, 0.8, 0.5, 0.3, 0.1] + [0.99] * 10
    logits = _logits_with_true_prob(probs)
    labels = torch.zeros(1, 1, len(probs), dtype=torch.long)
    loss = OhemCrossEntropy(0.7, min_kept_divisor=16)(logits, labels)
    assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.3) + math.log(0.1)) / 3,
                                        rel=1e-5)


def test_keeps_at_least_n_over_16_hardest_pixels():
    probs = [0.99] * 30 + [0.9, 0.8]  # no pixel below 0.7; 32 valid -> keep 2
    logits = _logits_with_true_prob(probs)
    labels = torch.zeros(1, 1, len(probs), dtype=torch.long)
    loss = OhemCrossEntropy(0.7)(logits, labels)
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-5)


def test_ignored_pixels_never_count_and_all_ignored_gives_zero():
    logits = _logits_with_true_prob([0.1, 0.1, 0.5, 0.99])
    labels = torch.tensor([[[255, 255, 0, 0]]])
    loss = OhemCrossEntropy(0.7, ignore_index=255)(logits, labels)
    assert loss.item() == pytest.approx(-math.log(0.5), rel=1e-5)
    logits.requires_grad_(True)
    zero = OhemCrossEntropy()(logits, torch.full((1, 1, 4), 255))
    zero.backward()
    assert zero.item() == 0.0 and logits.grad is not None and not logits.grad.any()


def test_matches_plain_cross_entropy_when_every_pixel_is_hard():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 6) * 0.01  # near-uniform: p ~ 0.2 < 0.7 everywhere
    labels = torch.randint(0, 5, (2, 4, 6))
    ohem = OhemCrossEntropy(0.7)(logits, labels)
    assert ohem.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match='thresh'):
        OhemCrossEntropy(0.0)
    with pytest.raises(ValueError, match='min_kept_divisor'):
        OhemCrossEntropy(0.7, min_kept_divisor=0)


def test_class_weights_average_hard_pixels_by_their_class_weight():
    # pixel i has true class labels[i] with probability probs[i]; all below 0.7: all hard
    logits = _logits_with_true_prob([0.1, 0.2, 0.3, 0.4])
    labels = torch.zeros(1, 1, 4, dtype=torch.long)
    labels[0, 0, 2:] = 1  # pixels 2, 3 are class 1: their true-class prob is (1-p)/2
    per_pixel = F.cross_entropy(logits, labels, reduction='none').view(-1)
    weights = torch.tensor([1.0, 3.0, 1.0])
    w = weights[labels.view(-1)]
    hard = per_pixel > -math.log(0.7)
    expected = (per_pixel[hard] * w[hard]).sum() / w[hard].sum()
    loss = OhemCrossEntropy(0.7, class_weights=weights.tolist())(logits, labels)
    assert hard.sum() == 4
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() != pytest.approx(per_pixel.mean().item(), rel=1e-3)  # weights matter
    equal = OhemCrossEntropy(0.7, class_weights=[2.0, 2.0, 2.0])(logits, labels)
    assert equal.item() == pytest.approx(OhemCrossEntropy(0.7)(logits, labels).item(), rel=1e-6)


def test_class_weights_are_checked():
    with pytest.raises(ValueError, match='finite positive'):
        OhemCrossEntropy(class_weights=[1.0, -1.0])
    with pytest.raises(ValueError, match='2 entries, the logits have 3 classes'):
        OhemCrossEntropy(class_weights=[1.0, 1.0])(_logits_with_true_prob([0.1]),
                                                   torch.zeros(1, 1, 1, dtype=torch.long))


def test_enet_weights_favour_rare_classes():
    weights = enet_class_weights([900, 90, 10, 0])
    assert weights.dtype == np.float32
    assert list(np.argsort(weights)) == [0, 1, 2, 3]  # rarer class, larger weight
    assert weights[3] == pytest.approx(1 / math.log(1.02))
    assert weights[0] == pytest.approx(1 / math.log(1.02 + 0.9))
    with pytest.raises(ValueError, match='positive sum'):
        enet_class_weights([0, 0])
