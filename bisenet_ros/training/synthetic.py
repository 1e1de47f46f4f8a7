"""A tiny synthetic segmentation dataset on disk, for smoke tests and the test suite.

Three classes on noisy frames: ``background`` (grey), ``box`` (reddish rectangles), ``disc``
(bluish circles); a 2-pixel border is unlabelled (255). Colours separate the classes, so a model
can overfit a handful of frames in a few dozen iterations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple, Union

import cv2
import numpy as np
import yaml

TOY_LABEL_SET = {
    'name': 'toy3',
    'ignore_index': 255,
    'mean': [0.5, 0.5, 0.5],
    'std': [0.25, 0.25, 0.25],
    'classes': [{'name': 'background', 'color': [90, 90, 90]},
                {'name': 'box', 'color': [200, 40, 40]},
                {'name': 'disc', 'color': [40, 60, 210]}],
}


def toy_sample(rng: np.random.Generator, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One RGB uint8 ``(H, W, 3)`` frame and its ``(H, W)`` uint8 label."""
    h, w = size
    label = np.zeros((h, w), np.uint8)
    for _ in range(2):
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        bh, bw = int(rng.integers(h // 6, h // 2)), int(rng.integers(w // 6, w // 2))
        label[y0:y0 + bh, x0:x0 + bw] = 1
    for _ in range(2):
        center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(label, center, int(rng.integers(h // 8, h // 4)), 2, thickness=-1)
    colors = np.array([c['color'] for c in TOY_LABEL_SET['classes']], np.float32)
    image = colors[label] + rng.normal(0, 20, (h, w, 3))
    label[:2], label[-2:], label[:, :2], label[:, -2:] = 255, 255, 255, 255
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_toy_dataset(root: Union[str, Path], *, train: int = 6, val: int = 3,
                      size: Tuple[int, int] = (64, 96), seed: int = 0) -> Dict[str, object]:
    """Write ``root/{train,val}_{images,labels}/`` and ``root/toy3.yaml``.

    Returns the ``dataset`` config section (kind ``folder``) that reads them.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (('train', train), ('val', val)):
        (root / f'{split}_images').mkdir(parents=True, exist_ok=True)
        (root / f'{split}_labels').mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, label = toy_sample(rng, size)
            cv2.imwrite(str(root / f'{split}_images' / f'{i:03d}.png'),
                        cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / f'{split}_labels' / f'{i:03d}.png'), label)
    label_yaml = root / 'toy3.yaml'
    label_yaml.write_text(yaml.safe_dump(TOY_LABEL_SET, sort_keys=False))
    return {'kind': 'folder', 'label_set': str(label_yaml),
            'train_images': str(root / 'train_images'), 'train_labels': str(root / 'train_labels'),
            'val_images': str(root / 'val_images'), 'val_labels': str(root / 'val_labels')}
