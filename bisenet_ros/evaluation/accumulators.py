"""Running statistics of a segmentation stream: latency, class distribution, label flicker.

All inputs are numpy arrays; nothing here knows about bags, models or ROS.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


class LatencyStats:
    """Durations in seconds -> mean, percentiles and max in milliseconds."""

    def __init__(self) -> None:
        self.samples: List[float] = []

    def add(self, seconds: float) -> None:
        """One duration in seconds."""
        self.samples.append(float(seconds))

    def summary(self) -> Dict[str, Optional[float]]:
        """``count``, ``mean_ms``, ``p50_ms`` .. ``p99_ms``, ``max_ms`` (``None`` if empty)."""
        out: Dict[str, Optional[float]] = {'count': len(self.samples)}
        values = np.asarray(self.samples, np.float64) * 1e3
        keys = ['mean_ms', 'min_ms'] + [f'p{p}_ms' for p in PERCENTILES] + ['max_ms']
        if not values.size:
            out.update({k: None for k in keys})
            return out
        out['mean_ms'] = float(values.mean())
        out['min_ms'] = float(values.min())
        for p in PERCENTILES:
            out[f'p{p}_ms'] = float(np.percentile(values, p))
        out['max_ms'] = float(values.max())
        return out


class ClassDistribution:
    """Share of pixels per predicted class (ids outside ``0..num_classes-1`` counted apart)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.counts = np.zeros(num_classes, np.int64)
        self.other = 0

    def add(self, labels: np.ndarray) -> None:
        """Count the pixels of one ``(H, W)`` label map."""
        flat = np.asarray(labels).reshape(-1).astype(np.int64)
        inside = (flat >= 0) & (flat < self.num_classes)
        self.counts += np.bincount(flat[inside], minlength=self.num_classes)
        self.other += int((~inside).sum())

    def shares(self, class_names: Sequence[str]) -> Dict[str, float]:
        """Share (0..1) of all counted pixels per class name."""
        total = int(self.counts.sum()) + self.other
        if not total:
            return {}
        out = {name: float(c) / total for name, c in zip(class_names, self.counts)}
        if self.other:
            out['<out of range>'] = self.other / total
        return out


class TemporalConsistency:
    """Share of pixels whose label changes between consecutive frames (lower = steadier).

    A frame of a different size than its predecessor starts a new run (not compared).
    """

    def __init__(self) -> None:
        self._previous: Optional[np.ndarray] = None
        self.flip_shares: List[float] = []

    def add(self, labels: np.ndarray) -> None:
        """The next ``(H, W)`` label map of the stream."""
        labels = np.asarray(labels)
        if self._previous is not None and self._previous.shape == labels.shape:
            self.flip_shares.append(float(np.mean(self._previous != labels)))
        self._previous = labels.copy()

    def summary(self) -> Dict[str, Optional[float]]:
        """``pairs`` compared, ``mean_flip_share``, ``max_flip_share`` (0..1)."""
        values = np.asarray(self.flip_shares, np.float64)
        return {'pairs': int(values.size),
                'mean_flip_share': float(values.mean()) if values.size else None,
                'max_flip_share': float(values.max()) if values.size else None}
