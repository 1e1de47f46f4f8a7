"""Online hard example mining (OHEM) cross-entropy, as used to train BiSeNet V2."""

from __future__ import annotations

import math

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

    Args:
        thresh: Probability threshold (0.7 in the paper's reference implementation).
        min_kept_divisor: Keep at least ``n_valid // min_kept_divisor`` pixels (16).
        ignore_index: Label value to skip.

    Shapes: logits ``(N, C, H, W)`` float, labels ``(N, H, W)`` int64; returns a scalar.
    """

    def __init__(self, thresh: float = 0.7, min_kept_divisor: int = 16,
                 ignore_index: int = IGNORE) -> None:
        super().__init__()
        if not 0.0 < thresh <= 1.0:
            raise ValueError(f'OHEM thresh must be in (0, 1], got {thresh}')
        if min_kept_divisor < 1:
            raise ValueError(f'min_kept_divisor must be >= 1, got {min_kept_divisor}')
        self.loss_thresh = -math.log(thresh)
        self.min_kept_divisor = min_kept_divisor
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        losses = F.cross_entropy(logits.float(), labels, ignore_index=self.ignore_index,
                                 reduction='none').view(-1)
        valid = int((labels != self.ignore_index).sum())
        if valid == 0:
            return logits.sum() * 0.0  # keeps the graph, contributes nothing
        n_min = max(1, valid // self.min_kept_divisor)
        hard = losses[losses > self.loss_thresh]
        if hard.numel() < n_min:
            hard, _ = losses.topk(n_min)
        return hard.mean()
