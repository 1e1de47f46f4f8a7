"""Sample images of an evaluation: camera frame | prediction overlay(s) | ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from ..images import reverse_channels
from ..labels import colorize, LabelSet
from .stream_eval import fit_to, Sample


def blend(image_bgr: np.ndarray, labels: np.ndarray, label_set: LabelSet,
          alpha: float = 0.5) -> np.ndarray:
    """``(H, W, 3)`` BGR image blended with the label colours (BGR uint8)."""
    colors = reverse_channels(colorize(fit_to(labels, image_bgr.shape[:2]), label_set))
    mixed = (1 - alpha) * image_bgr.astype(np.float32) + alpha * colors.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def sample_panel(sample: Sample, label_set: LabelSet,
                 model_names: Sequence[str] = ()) -> np.ndarray:
    """One BGR strip: the frame, each model's overlay, and the ground truth colours if any."""
    import cv2
    image = sample.image
    tiles: List[np.ndarray] = [image]
    captions = ['camera']
    for i, labels in enumerate(sample.predictions):
        if labels is not None:
            tiles.append(blend(image, labels, label_set))
            captions.append(model_names[i] if i < len(model_names) else f'model {i}')
    if sample.ground_truth is not None:
        tiles.append(reverse_channels(
            colorize(fit_to(sample.ground_truth, image.shape[:2]), label_set)))
        captions.append('ground truth')
    tiles = [np.array(t, dtype=np.uint8, copy=True) for t in tiles]  # writable copies
    for tile, caption in zip(tiles, captions):
        (width, height), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        cv2.rectangle(tile, (0, 0), (width + 10, height + base + 8), (0, 0, 0), cv2.FILLED)
        cv2.putText(tile, caption, (5, height + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate(tiles, axis=1)


def write_samples(samples: Sequence[Sample], label_set: LabelSet, out_dir: Path,
                  model_names: Sequence[str] = (), prefix: str = 'sample') -> List[str]:
    """Write one PNG per sample into ``out_dir``; returns the file names."""
    import cv2
    out_dir.mkdir(parents=True, exist_ok=True)
    names: List[str] = []
    for sample in samples:
        name = f'{prefix}_{sample.index:04d}.png'
        if not cv2.imwrite(str(out_dir / name), sample_panel(sample, label_set, model_names)):
            raise OSError(f'could not write {out_dir / name}')
        names.append(name)
    return names
