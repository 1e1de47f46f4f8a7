"""Accumulate a segmentation run over a stream of frames: accuracy, speed, stability, agreement.

Shared by the offline bag evaluation (predictions from a Segmenter in this process) and the live
one (predictions received from the node). Pure numpy; results are plain dicts for the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..labels import LabelSet
from .accumulators import ClassDistribution, LatencyStats, TemporalConsistency
from .metrics import ConfusionMatrix


def fit_to(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W)`` label map to ``shape`` (no-op if equal)."""
    if tuple(labels.shape) == tuple(shape):
        return labels
    rows = (np.arange(shape[0]) * labels.shape[0] // shape[0]).astype(np.intp)
    cols = (np.arange(shape[1]) * labels.shape[1] // shape[1]).astype(np.intp)
    return labels[rows[:, None], cols[None, :]]


class ModelStats:
    """Everything measured for one model (or one live node) over a run."""

    def __init__(self, name: str, label_set: LabelSet,
                 details: Optional[Mapping[str, Any]] = None) -> None:
        self.name = name
        self.label_set = label_set
        self.details = dict(details or {})
        self.confusion = ConfusionMatrix(label_set.num_classes, label_set.ignore_index)
        self.latency: Dict[str, LatencyStats] = {}
        self.distribution = ClassDistribution(label_set.num_classes)
        self.temporal = TemporalConsistency()
        self.frames = 0
        self.frames_scored = 0
        self.resized = 0

    def add(self, labels: np.ndarray, ground_truth: Optional[np.ndarray] = None,
            timings: Optional[Mapping[str, float]] = None) -> None:
        """One prediction ``(H, W)`` integer map; ``timings`` in seconds per stage."""
        self.frames += 1
        self.distribution.add(labels)
        self.temporal.add(labels)
        for stage, seconds in (timings or {}).items():
            self.latency.setdefault(stage, LatencyStats()).add(seconds)
        if ground_truth is not None:
            if labels.shape != ground_truth.shape:
                labels = fit_to(labels, ground_truth.shape)
                self.resized += 1
            self.confusion.update(labels, ground_truth)
            self.frames_scored += 1

    def as_dict(self) -> Dict[str, Any]:
        """JSON-ready results of this model."""
        names = self.label_set.class_names
        out: Dict[str, Any] = {'name': self.name, **self.details, 'frames': self.frames,
                               'frames_scored': self.frames_scored}
        if self.resized:
            out['predictions_resized_to_ground_truth'] = self.resized
        out['accuracy'] = (self.confusion.scores().as_dict(names) if self.frames_scored
                           else None)
        out['confusion_matrix'] = self.confusion.matrix.tolist() if self.frames_scored else None
        out['latency_ms'] = {stage: stats.summary() for stage, stats in self.latency.items()}
        total = self.latency.get('total')
        mean_ms = total.summary()['mean_ms'] if total else None
        out['fps'] = 1000.0 / mean_ms if mean_ms else None
        out['class_distribution'] = self.distribution.shares(names)
        out['temporal_consistency'] = self.temporal.summary()
        return out


class Agreement:
    """How closely a candidate's predictions follow a reference's (e.g. fp16 engine vs fp32)."""

    def __init__(self, reference: str, candidate: str, label_set: LabelSet) -> None:
        self.reference = reference
        self.candidate = candidate
        self.label_set = label_set
        self.confusion = ConfusionMatrix(label_set.num_classes, ignore_index=None)

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """One frame's label maps of both models."""
        if candidate.shape != reference.shape:
            candidate = fit_to(candidate, reference.shape)
        self.confusion.update(candidate, reference)

    def as_dict(self) -> Dict[str, Any]:
        """mIoU and pixel agreement of the candidate scored against the reference."""
        scores = self.confusion.scores().as_dict(self.label_set.class_names)
        return {'reference': self.reference, 'candidate': self.candidate,
                'miou': scores['miou'], 'pixel_agreement': scores['pixel_accuracy'],
                'iou': scores['iou']}


@dataclass
class Sample:
    """A frame kept for overlay images: BGR image, ground truth, one prediction per model."""

    index: int
    stamp_ns: int
    image: np.ndarray
    ground_truth: Optional[np.ndarray]
    predictions: List[Optional[np.ndarray]]


@dataclass
class RunInfo:
    """Where the frames came from and how they were paired (counts from the stamp matcher)."""

    source: Dict[str, Any] = field(default_factory=dict)
    frames: Dict[str, Any] = field(default_factory=dict)


class StreamEvaluation:
    """One run of one or more models over the same frames.

    Args:
        models: ``ModelStats`` per model; the first is the reference for agreement.
        sample_every: keep every n-th frame (from the first) for overlay images; 0 = none.
        max_samples: at most this many samples.
    """

    def __init__(self, models: Sequence[ModelStats], sample_every: int = 0,
                 max_samples: int = 6) -> None:
        if not models:
            raise ValueError('need at least one model to evaluate')
        self.models = list(models)
        self.label_set = self.models[0].label_set
        self.agreements = [Agreement(self.models[0].name, m.name, self.label_set)
                           for m in self.models[1:]]
        self.sample_every = sample_every
        self.max_samples = max_samples
        self.samples: List[Sample] = []
        self.info = RunInfo()

    def add_frame(self, index: int, stamp_ns: int, image: Optional[np.ndarray],
                  ground_truth: Optional[np.ndarray],
                  predictions: Sequence[Optional[np.ndarray]],
                  timings: Optional[Sequence[Optional[Mapping[str, float]]]] = None) -> None:
        """Add one frame; ``predictions[i]`` is model i's label map or ``None`` (missing)."""
        timings = timings or [None] * len(predictions)
        for model, labels, times in zip(self.models, predictions, timings):
            if labels is not None:
                model.add(labels, ground_truth, times)
        if predictions[0] is not None:
            for agreement, labels in zip(self.agreements, predictions[1:]):
                if labels is not None:
                    agreement.add(predictions[0], labels)
        if (self.sample_every and image is not None and index % self.sample_every == 0
                and len(self.samples) < self.max_samples):
            self.samples.append(Sample(index, stamp_ns, image, ground_truth, list(predictions)))

    def as_dict(self) -> Dict[str, Any]:
        """The JSON report body."""
        return {'source': self.info.source, 'frames': self.info.frames,
                'label_set': {'name': self.label_set.name,
                              'classes': list(self.label_set.class_names),
                              'ignore_index': self.label_set.ignore_index},
                'models': [m.as_dict() for m in self.models],
                'agreement': [a.as_dict() for a in self.agreements]}
