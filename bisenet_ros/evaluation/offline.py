"""Offline evaluation: run one or more predictors (Segmenters) over a bag's frames.

A predictor is any callable ``image_bgr (H, W, 3) uint8 -> (labels (H, W), timings seconds)``,
so a test can evaluate label maps it controls and users can compare backends or precisions. A
*stamped* predictor (``NamedPredictor.stamped``) also takes the frame's ``stamp_ns`` and
``frame_id``: temporal smoothing (:func:`smoothed_predictor`) needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from ..labels import LabelSet
from ..temporal_smoothing import DEFAULT_MAX_GAP_S
from .stamp_matching import MatchCounts
from .stream_eval import ModelStats, StreamEvaluation

Predictor = Callable[..., Tuple[np.ndarray, Dict[str, float]]]


@dataclass
class NamedPredictor:
    """A predictor with a report name and details (backend, model file, precision...).

    ``stamped``: ``predict(image, stamp_ns, frame_id)`` rather than ``predict(image)``.
    """

    name: str
    predict: Predictor
    details: Dict[str, Any] = field(default_factory=dict)
    stamped: bool = False

    def run(self, frame: Any) -> Tuple[np.ndarray, Dict[str, float]]:
        """Predict one ``Frame``-like (``image``, ``stamp_ns``, ``frame_id``)."""
        if self.stamped:
            return self.predict(frame.image, frame.stamp_ns, getattr(frame, 'frame_id', ''))
        return self.predict(frame.image)


def segmenter_predictor(segmenter: Any) -> Predictor:
    """Wrap ``Segmenter.segment`` (BGR input); adds the wall time of the call as ``total``."""
    def predict(image_bgr: np.ndarray) -> Tuple[np.ndarray, Dict[str, float]]:
        start = time.perf_counter()
        result = segmenter.segment(image_bgr, bgr=True)
        total = time.perf_counter() - start
        return result.labels, dict(result.timings, total=total)
    return predict


def segmenter_logits(segmenter: Any, image_bgr: np.ndarray) -> np.ndarray:
    """``(C, h, w)`` float32 logits of one BGR image at the network's resolution (the
    segmenter's ``input_size``, else the image's size), from its backend.

    Stands in for a Segmenter option returning logits (proposed in ``docs/smoothing.md``); a
    model without a logits output (an ONNX file exported with labels only) is a clear
    ``RuntimeError`` from the backend.
    """
    from ..preprocess import preprocess
    labels = segmenter.label_set
    batch, _ = preprocess([image_bgr], labels.mean, labels.std, bgr=True,
                          input_size=segmenter.input_size)
    return segmenter.backend.infer(batch, ('logits',))['logits'][0]


def smoothed_predictor(segmenter: Any, weight: float,
                       max_gap_s: float = DEFAULT_MAX_GAP_S) -> Predictor:
    """A stamped predictor: the segmenter's logits, averaged over frames by a
    :class:`~bisenet_ros.temporal_smoothing.TemporalSmoother` of ``weight``, then the argmax
    resized to the image (as the Segmenter resizes labels). Timings: ``inference``
    (preprocess + network), ``smoothing`` (softmax + average + argmax + resize), ``total``."""
    from ..inference.postprocess import resize_labels
    from ..temporal_smoothing import labels_and_confidence, TemporalSmoother
    smoother = TemporalSmoother(weight, max_gap_s, name='eval-bag')
    ignore = segmenter.label_set.ignore_index

    def predict(image_bgr: np.ndarray, stamp_ns: int,
                frame_id: str) -> Tuple[np.ndarray, Dict[str, float]]:
        start = time.perf_counter()
        logits = segmenter_logits(segmenter, image_bgr)
        middle = time.perf_counter()
        probabilities = smoother.update(logits, stamp_ns, frame_id, logits=True)
        labels = labels_and_confidence(probabilities, ignore)[0]
        labels = resize_labels(labels, image_bgr.shape[:2])
        end = time.perf_counter()
        return labels, {'inference': middle - start, 'smoothing': end - middle,
                        'total': end - start}
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
            for _ in range(warmup):  # a smoother sees the first frame twice: the same average
                for predictor in predictors:
                    predictor.run(frame)
            first = False
        outputs = [p.run(frame) for p in predictors]
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
