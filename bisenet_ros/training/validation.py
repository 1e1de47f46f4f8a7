"""Evaluation of a segmentation model on a dataset: single scale or multi-scale with flip."""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation.metrics import ConfusionMatrix
from .datasets import IGNORE, SegmentationDataset
from .transforms import to_tensor


@torch.no_grad()
def predict_logits(model: torch.nn.Module, image: np.ndarray, *, mean: Sequence[float],
                   std: Sequence[float], scale: float = 1.0, flip: bool = False,
                   device: torch.device = torch.device('cpu')) -> torch.Tensor:
    """Logits of ``model`` for ``image`` resized by ``scale`` (averaged with its horizontal
    flip when ``flip``), bilinearly resized back to the image's size.

    Args:
        model: Eval-mode model returning logits ``(1, C, h, w)`` for input ``(1, 3, h, w)``.
        image: RGB ``(H, W, 3)`` uint8.
    Returns:
        ``(1, C, H, W)`` float32 on ``device``.
    """
    height, width = image.shape[:2]
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    scaled = image if size == (width, height) else cv2.resize(
        image, size, interpolation=cv2.INTER_LINEAR)
    batch = to_tensor(scaled, mean, std).unsqueeze(0).to(device)
    if flip:
        batch = torch.cat([batch, batch.flip(-1)])
    logits = model(batch).float()
    if flip:
        logits = logits[:1] + logits[1:].flip(-1)  # summed logits of both views
        logits = logits / 2
    return F.interpolate(logits, size=(height, width), mode='bilinear', align_corners=False)


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, image: np.ndarray, *, mean: Sequence[float],
                          std: Sequence[float], scales: Sequence[float] = (1.0,),
                          flip: bool = False, device: torch.device = torch.device('cpu')
                          ) -> torch.Tensor:
    """Summed softmax over ``scales`` (and their horizontal flips) at the image's size.

    Args:
        model: Eval-mode model returning logits ``(1, C, h, w)`` for input ``(1, 3, h, w)``.
        image: RGB ``(H, W, 3)`` uint8.
    Returns:
        ``(C, H, W)`` float32 on ``device`` (argmax over dim 0 is the prediction).
    """
    total: Optional[torch.Tensor] = None
    for scale in scales:
        probs = predict_logits(model, image, mean=mean, std=std, scale=scale, flip=flip,
                               device=device).softmax(1)[0]
        total = probs if total is None else total + probs
    assert total is not None, 'scales must not be empty'
    return total


@torch.no_grad()
def evaluate_dataset(model: torch.nn.Module, dataset: SegmentationDataset, *,
                     scales: Sequence[float] = (1.0,), flip: bool = False,
                     device: torch.device = torch.device('cpu'), max_images: Optional[int] = None,
                     rank: int = 0, world_size: int = 1, progress=None) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over ``dataset`` (this rank's share ``rank::world_size``).

    Ground truth is the dataset's train ids at full resolution; :data:`IGNORE` is skipped.
    ``model`` is switched to eval mode and back to its previous mode afterwards.
    """
    if not scales:
        raise ValueError('at least one evaluation scale is needed')
    was_training = model.training
    model.eval()
    labels = dataset.label_set
    matrix = ConfusionMatrix(dataset.num_classes, IGNORE)
    count = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    try:
        for index in range(rank, count, world_size):
            image, label = dataset.load(index)
            probs = predict_probabilities(model, image, mean=labels.mean, std=labels.std,
                                          scales=scales, flip=flip, device=device)
            matrix.update(probs.argmax(0).cpu().numpy(), label)
            if progress is not None:
                progress(index)
    finally:
        model.train(was_training)
    return matrix
