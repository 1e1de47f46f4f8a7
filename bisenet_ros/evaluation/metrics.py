"""Segmentation metrics from a confusion matrix (numpy only).

Rows are ground truth, columns are predictions. Pixels whose ground truth equals ``ignore_index``
(or is outside ``0..num_classes-1``) are not counted; predictions outside the range are counted
as wrong for their ground-truth class (column dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class SegmentationScores:
    """Scores derived from a confusion matrix.

    ``iou`` and ``accuracy`` are per class (NaN for classes absent from both ground truth and
    prediction); ``miou`` averages the non-NaN IoUs; ``pixel_accuracy`` is correct / counted.
    """

    iou: np.ndarray
    class_accuracy: np.ndarray
    miou: float
    pixel_accuracy: float
    mean_class_accuracy: float
    pixels: int

    def as_dict(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
        """JSON-friendly form (NaN becomes ``None``); per-class keys use ``class_names``."""
        names = list(class_names) if class_names else [str(i) for i in range(len(self.iou))]

        def clean(v: float) -> Optional[float]:
            return None if np.isnan(v) else float(v)

        return {
            'miou': clean(self.miou),
            'pixel_accuracy': clean(self.pixel_accuracy),
            'mean_class_accuracy': clean(self.mean_class_accuracy),
            'pixels': int(self.pixels),
            'iou': {n: clean(v) for n, v in zip(names, self.iou)},
            'class_accuracy': {n: clean(v) for n, v in zip(names, self.class_accuracy)},
        }


class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` int64 confusion matrix."""

    def __init__(self, num_classes: int, ignore_index: Optional[int] = 255) -> None:
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)
        #: Per true class: pixels predicted as an id outside ``0..num_classes-1`` (always wrong).
        self.out_of_range = np.zeros(num_classes, np.int64)

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one or more label maps; both integer arrays of the same shape (e.g. ``(H, W)``)."""
        prediction = np.asarray(prediction)
        target = np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(f'prediction shape {prediction.shape} != target shape '
                             f'{target.shape}')
        t = target.reshape(-1).astype(np.int64)
        p = prediction.reshape(-1).astype(np.int64)
        keep = (t >= 0) & (t < self.num_classes)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        keep &= (p >= 0) & (p < self.num_classes)
        counts = np.bincount(t[keep] * self.num_classes + p[keep],
                             minlength=self.num_classes ** 2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)
        # Predictions outside the class range still count as pixels of their true class.
        wrong = ((t >= 0) & (t < self.num_classes) & ~((p >= 0) & (p < self.num_classes)))
        if self.ignore_index is not None:
            wrong &= t != self.ignore_index
        self.out_of_range += np.bincount(t[wrong], minlength=self.num_classes)

    def merge(self, other: 'ConfusionMatrix') -> None:
        """Add another matrix of the same size (e.g. from another worker)."""
        if other.num_classes != self.num_classes:
            raise ValueError('cannot merge confusion matrices of different sizes')
        self.matrix += other.matrix
        self.out_of_range += other.out_of_range

    def scores(self) -> SegmentationScores:
        """IoU, accuracies and mIoU of everything added so far."""
        m = self.matrix.astype(np.float64)
        tp = np.diag(m)
        gt = m.sum(axis=1) + self.out_of_range
        pred = m.sum(axis=0)
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = tp / (gt + pred - tp)
            class_acc = tp / gt
        total = gt.sum()
        valid = ~np.isnan(iou)
        return SegmentationScores(
            iou=iou, class_accuracy=class_acc,
            miou=float(iou[valid].mean()) if valid.any() else float('nan'),
            pixel_accuracy=float(tp.sum() / total) if total else float('nan'),
            mean_class_accuracy=float(np.nanmean(class_acc)) if (gt > 0).any() else float('nan'),
            pixels=int(total))
