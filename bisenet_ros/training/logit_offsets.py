"""Per-class logit offsets: a post-training calibration of the class priors.

Training with class weights and rare-class crops pushes the model towards rare classes; on
CamVid the trained model predicts them too often (low precision). A constant offset per class,
added to the logits, moves every decision boundary between two classes without retraining.
The offsets are fitted on a training split (coordinate search for the highest mIoU on sampled
pixels) and folded into the bias of the main head's 1x1 classifier: the architecture, the
exports and the inference cost stay exactly the same, and the offsets are recorded in the
checkpoint's meta (``logit_offsets``) so training from such a checkpoint removes them first.

Bilinear upsampling keeps a constant per channel, and argmax and softmax only see differences
between classes, so the offsets act the same at 1/8 resolution as at full resolution.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..evaluation.metrics import ConfusionMatrix
from .datasets import IGNORE, SegmentationDataset
from .validation import predict_logits

#: Meta key of a calibrated checkpoint: ``{'offsets': {class: float}, 'fitted_on': ..., ...}``.
LOGIT_OFFSETS_META = 'logit_offsets'
#: State-dict key of the main head's 1x1 classifier bias, where the offsets are folded in.
CLASSIFIER_BIAS = 'head.conv_out.1.bias'
#: The offsets tried for each class in every sweep (logit units).
OFFSET_GRID = tuple(np.round(np.arange(-2.0, 2.001, 0.25), 2).tolist())


@torch.no_grad()
def sample_logits(model: torch.nn.Module, dataset: SegmentationDataset, *, stride: int = 4,
                  scale: float = 1.0, max_images: Optional[int] = None,
                  device: torch.device = torch.device('cpu'), progress=None
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Logits of ``model`` on every ``stride``-th pixel (both axes) of each labelled image.

    ``model`` must be in eval mode and return ``(1, C, h, w)`` logits for ``(1, 3, h, w)``.
    Returns ``(logits, labels)``: ``(N, C)`` float32 and ``(N,)`` int64, ignored pixels
    dropped; at 360x480 and stride 4 that is 10,800 pixels (0.5 MB) per image.
    """
    if stride < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    label_set = dataset.label_set
    count = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    all_logits, all_labels = [], []
    for index in range(count):
        image, label = dataset.load(index)
        logits = predict_logits(model, image, mean=label_set.mean, std=label_set.std,
                                scale=scale, device=device)
        sampled = logits[0, :, stride // 2::stride, stride // 2::stride]
        target = label[stride // 2::stride, stride // 2::stride].reshape(-1).astype(np.int64)
        keep = target != IGNORE
        all_logits.append(sampled.flatten(1).T.cpu().numpy()[keep])
        all_labels.append(target[keep])
        if progress is not None:
            progress(index)
    return np.concatenate(all_logits), np.concatenate(all_labels)


def scores_with_offsets(logits: np.ndarray, labels: np.ndarray, offsets: np.ndarray,
                        chunk: int = 2_000_000) -> ConfusionMatrix:
    """Confusion matrix of ``argmax(logits + offsets)`` against ``labels`` (see
    :func:`sample_logits`)."""
    num_classes = logits.shape[1]
    matrix = ConfusionMatrix(num_classes, IGNORE)
    shift = torch.as_tensor(np.asarray(offsets, np.float32))
    for start in range(0, len(logits), chunk):
        prediction = (torch.from_numpy(logits[start:start + chunk]) + shift).argmax(1)
        matrix.update(prediction.numpy(), labels[start:start + chunk])
    return matrix


def fit_logit_offsets(logits: np.ndarray, labels: np.ndarray, *,
                      grid: Sequence[float] = OFFSET_GRID, max_sweeps: int = 4
                      ) -> Tuple[np.ndarray, float, float]:
    """Per-class offsets (``(C,)`` float32, mean 0) that maximise the mIoU of
    ``argmax(logits + offsets)``, rounded to 4 decimals (as the meta records them): each
    sweep tries every value of ``grid`` for each class in turn, keeping the best; stops after
    a sweep that changed nothing.

    Returns ``(offsets, miou_before, miou_after)`` on these pixels (fractions).
    """
    num_classes = logits.shape[1]
    offsets = np.zeros(num_classes, np.float32)

    def miou(candidate: np.ndarray) -> float:
        value = scores_with_offsets(logits, labels, candidate).scores().miou
        return -1.0 if value != value else value

    before = best = miou(offsets)
    for _ in range(max_sweeps):
        changed = False
        for cls in range(num_classes):
            for value in grid:
                if value == offsets[cls]:
                    continue
                trial = offsets.copy()
                trial[cls] = value
                score = miou(trial)
                if score > best + 1e-6:
                    best, offsets, changed = score, trial, True
        if not changed:
            break
    return np.round(offsets - offsets.mean(), 4).astype(np.float32), before, best


@torch.no_grad()
def add_logit_offsets(model: torch.nn.Module, offsets: Sequence[float]) -> None:
    """Add ``offsets`` (one per class, logit units) to the main classifier's bias
    (:data:`CLASSIFIER_BIAS`), in place; negative offsets remove them again."""
    bias = model.get_parameter(CLASSIFIER_BIAS)
    values = torch.as_tensor(np.asarray(offsets, np.float32), device=bias.device)
    if values.shape != bias.shape:
        raise ValueError(f'logit offsets: expected {bias.numel()} values (one per class), got '
                         f'{values.numel()}')
    bias.add_(values.to(bias.dtype))


def recorded_offsets(meta: Mapping[str, Any], class_names: Sequence[str]) -> Optional[np.ndarray]:
    """The offsets a calibrated checkpoint's meta records, in class order; ``None`` when the
    checkpoint is not calibrated. Raises ValueError when they do not match ``class_names``."""
    record = meta.get(LOGIT_OFFSETS_META)
    if not record:
        return None
    values = record.get('offsets') if isinstance(record, Mapping) else None
    if not isinstance(values, Mapping) or set(values) != set(class_names):
        raise ValueError(f"meta '{LOGIT_OFFSETS_META}': expected offsets for the classes "
                         f"{list(class_names)}, got {record!r}")
    return np.array([float(values[name]) for name in class_names], np.float32)


def offsets_meta(offsets: np.ndarray, class_names: Sequence[str], **facts: Any
                 ) -> Dict[str, Any]:
    """The ``logit_offsets`` meta entry: offsets by class name plus ``facts`` (where and how
    they were fitted)."""
    return {'offsets': {name: round(float(v), 4) for name, v in zip(class_names, offsets)},
            **facts}
