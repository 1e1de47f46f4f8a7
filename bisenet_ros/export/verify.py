"""Check an exported artifact against the PyTorch model on sample images: pixel agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from ..image_files import collect_images, read_images, spread_evenly


@dataclass
class Agreement:
    """Result of :func:`verify_backend`.

    Attributes:
        agreement: Fraction of pixels (all images) whose class equals PyTorch fp32's.
        per_image: The same per image.
        max_abs_logit_diff: Largest logit difference (``None`` when the artifact has no logits).
        max_abs_logit: Largest PyTorch logit magnitude (scale for the difference).
    """

    agreement: float
    per_image: List[float] = field(default_factory=list)
    max_abs_logit_diff: Optional[float] = None
    max_abs_logit: float = 0.0

    def summary(self) -> str:
        text = (f'pixel agreement with PyTorch fp32: {100 * self.agreement:.3f}% '
                f'(min per image {100 * min(self.per_image):.3f}%, {len(self.per_image)} '
                'images)')
        if self.max_abs_logit_diff is not None:
            text += (f'; max |logit diff| {self.max_abs_logit_diff:.3g} (max |logit| '
                     f'{self.max_abs_logit:.3g})')
        return text


def sample_images(sources: Optional[Sequence[str]] = None, limit: int = 4) -> List[np.ndarray]:
    """At most ``limit`` BGR uint8 images, evenly spaced over the given files/folders (name
    order), or the packaged demo frames when none are given."""
    import cv2
    if sources:
        paths = collect_images(sources)
    else:
        demo = Path(__file__).resolve().parent.parent / 'data' / 'demo'
        paths = sorted(demo.glob('*.jpg'))
    images = read_images(spread_evenly(paths, limit))
    if not images:
        rng = np.random.default_rng(0)  # no images anywhere: smooth synthetic scenes
        base = rng.integers(0, 256, (limit, 8, 16, 3), dtype=np.uint8)
        images = [cv2.resize(b, (480, 360), interpolation=cv2.INTER_CUBIC) for b in base]
    return images


def verify_backend(module: Any, backend: Any, images: Sequence[np.ndarray],
                   input_size: Tuple[int, int], label_set: Any) -> Agreement:
    """Compare ``backend`` with ``module`` (PyTorch fp32, CPU) on ``images`` at ``input_size``."""
    import torch

    from ..preprocess import preprocess
    per_image, diffs, scale = [], [], 0.0
    for image in images:
        batch, _ = preprocess([image], label_set.mean, label_set.std, bgr=True,
                              input_size=input_size)
        with torch.inference_mode():
            ref = module.cpu().eval()(torch.from_numpy(batch)).numpy()
        has_logits = 'logits' in backend.available_outputs
        out = backend.infer(batch, ('labels', 'logits') if has_logits else ('labels',))
        per_image.append(float((out['labels'][0] == ref[0].argmax(0)).mean()))
        scale = max(scale, float(np.abs(ref).max()))
        if 'logits' in out:
            diffs.append(float(np.abs(out['logits'] - ref).max()))
    return Agreement(agreement=float(np.mean(per_image)), per_image=per_image,
                     max_abs_logit_diff=max(diffs) if diffs else None, max_abs_logit=scale)
