"""Online hard example mining (OHEM) cross-entropy, as used to train BiSeNet V2."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .datasets import IGNORE


class OhemCrossEntropy(nn.Module):
    """Mean cross-entropy over the hard pixels of a batch.

    A pixel is hard when its loss exceeds ``-log(thresh)`` (its true-class probability is below
    ``thresh``). When fewer than ``n_min = max(1, n_valid // min_kept_divisor)`` pixels are hard,
    the ``n_min`` highest-loss pixels are averaged instead. Pixels labelled ``ignore_index``
    never count.

    With ``class_weights``, hardness is still judged on the unweighted loss (the probability
    rule above), and the hard pixels are averaged with the weight of their true class:
    ``sum(w[y] * loss) / sum(w[y])``, so the loss keeps its scale.

    Args:
        thresh: Probability threshold (0.7 in the paper's reference implementation).
        min_kept_divisor: Keep at least ``n_valid // min_kept_divisor`` pixels (16).
        ignore_index: Label value to skip.
        class_weights: One positive weight per class, or None (all 1).

    Shapes: logits ``(N, C, H, W)`` float, labels ``(N, H, W)`` int64; returns a scalar.
    """

    def __init__(self, thresh: float = 0.7, min_kept_divisor: int = 16,
                 ignore_index: int = IGNORE,
                 class_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if not 0.0 < thresh <= 1.0:
            raise ValueError(f'OHEM thresh must be in (0, 1], got {thresh}')
        if min_kept_divisor < 1:
            raise ValueError(f'min_kept_divisor must be >= 1, got {min_kept_divisor}')
        self.loss_thresh = -math.log(thresh)
        self.min_kept_divisor = min_kept_divisor
        self.ignore_index = ignore_index
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
            if weights.ndim != 1 or not bool(torch.isfinite(weights).all()) or \
                    not bool((weights > 0).all()):
                raise ValueError(f'class_weights must be finite positive numbers, one per class, '
                                 f'got {list(class_weights)!r}')
        self.register_buffer('class_weights', weights)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index,
                                 reduction='none').view(-1)
        valid_mask = (labels != self.ignore_index).view(-1)
        valid = int(valid_mask.sum())
        if valid == 0:
            return logits.sum() * 0.0  # keeps the graph, contributes nothing
        if self.class_weights is not None and self.class_weights.numel() != logits.shape[1]:
            raise ValueError(f'class_weights has {self.class_weights.numel()} entries, the '
                             f'logits have {logits.shape[1]} classes')
        n_min = max(1, valid // self.min_kept_divisor)
        hard_index = torch.nonzero(losses > self.loss_thresh).view(-1)
        if hard_index.numel() < n_min:
            _, hard_index = losses.topk(n_min)
        hard = losses[hard_index]
        if self.class_weights is None:
            return hard.mean()
        classes = labels.view(-1)[hard_index].clamp(0, logits.shape[1] - 1)
        weights = self.class_weights[classes] * valid_mask[hard_index]
        return (hard * weights).sum() / weights.sum().clamp_min(1e-12)


def enet_class_weights(pixel_counts: Sequence[int], c: float = 1.02) -> np.ndarray:
    """ENet's class weighting ``1 / ln(c + p)``, ``p`` a class's share of labelled pixels.

    ``pixel_counts``: labelled pixels per class (ignore excluded). Returns ``(C,)`` float32,
    about 1.5 for a class with half the pixels and up to ``1 / ln(c)`` (50.5) for an absent one.
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f'pixel_counts must be non-negative counts per class with a positive '
                         f'sum, got {list(pixel_counts)!r}')
    share = counts / counts.sum()
    return (1.0 / np.log(c + share)).astype(np.float32)
