"""Offline evaluation: run one or more predictors (Segmenters) over a bag's frames.

A predictor is any callable ``image_bgr (H, W, 3) uint8 -> (labels (H, W), timings seconds)``,
so a test can evaluate label maps it controls and users can compare backends or precisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from ..labels import LabelSet
from .stamp_matching import MatchCounts
from .stream_eval import ModelStats, StreamEvaluation

Predictor = Callable[[np.ndarray], Tuple[np.ndarray, Dict[str, float]]]


@dataclass
class NamedPredictor:
    """A predictor with a report name and details (backend, model file, precision...)."""

    name: str
    predict: Predictor
    details: Dict[str, Any] = field(default_factory=dict)


def segmenter_predictor(segmenter: Any) -> Predictor:
    """Wrap ``Segmenter.segment`` (BGR input); adds the wall time of the call as ``total``."""
    def predict(image_bgr: np.ndarray) -> Tuple[np.ndarray, Dict[str, float]]:
        start = time.perf_counter()
        result = segmenter.segment(image_bgr, bgr=True)
        total = time.perf_counter() - start
        return result.labels, dict(result.timings, total=total)
    return predict


def evaluate_frames(frames: Iterable[Any], predictors: Sequence[NamedPredictor],
                    label_set: LabelSet, warmup: int = 1, sample_every: int = 0,
                    max_samples: int = 6,
                    progress: Optional[Callable[[int], None]] = None) -> StreamEvaluation:
    """Run every predictor on every frame (``Frame``-like: ``index, stamp_ns, image,
    ground_truth``) and accumulate accuracy, latency, stability and agreement.

    ``warmup`` extra untimed runs on the first frame keep one-off start-up costs (allocation,
    kernel selection) out of the latency figures.
    """
    evaluation = StreamEvaluation([ModelStats(p.name, label_set, p.details) for p in predictors],
                                  sample_every=sample_every, max_samples=max_samples)
    first = True
    for frame in frames:
        if first:
            for _ in range(warmup):
                for predictor in predictors:
                    predictor.predict(frame.image)
            first = False
        outputs = [p.predict(frame.image) for p in predictors]
        evaluation.add_frame(frame.index, frame.stamp_ns, frame.image, frame.ground_truth,
                             [o[0] for o in outputs], [o[1] for o in outputs])
        if progress:
            progress(1)
    return evaluation


def frame_accounting(counts: MatchCounts, has_labels: bool) -> Dict[str, int]:
    """Report rows for how the bag's images were paired with ground truth."""
    if not has_labels:
        return {'images': counts.images, 'with_ground_truth': 0}
    return {'images': counts.images, 'with_ground_truth': counts.matched,
            'without_ground_truth': counts.images_without_partner,
            'ground_truth_without_image': counts.partners_without_image}
