"""Per-camera counters and latencies of the segmentation node, and their ``/diagnostics`` form.

:class:`CameraStats` is plain Python, updated by the worker thread and read by the diagnostics
timer (a lock guards it). :func:`diagnostic_status` builds ``diagnostic_msgs/DiagnosticStatus``
(imported lazily) with OK / WARN / ERROR levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from ..limits import MAX_DIAGNOSTIC_CHARS, shorten

#: Stages timed for every processed frame, in pipeline order.
STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'render', 'publish')

OK, WARN, ERROR = 0, 1, 2


@dataclass
class _Window:
    """Sums since the last report."""

    published: int = 0
    rejected: int = 0
    stage_sums: Dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    age_sum: float = 0.0
    age_count: int = 0
    age_max: float = float('-inf')
    age_min: float = float('inf')


class CameraStats:
    """Counters of one camera (input topic); thread-safe."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self._window = _Window()
        self._window_start = time.monotonic()
        self._last_received_total = 0
        self.published = 0
        self.rejected = 0
        self.skipped_no_subscribers = 0
        self.dropped_no_model = 0
        self.superseded = 0
        self.last_reject_reason = ''
        self.last_input_time: Optional[float] = None

    def frame_published(self, stages: Dict[str, float], age: Optional[float]) -> None:
        """One frame went out; ``stages`` in seconds, ``age`` = now - header stamp (s)."""
        with self._lock:
            self.published += 1
            w = self._window
            w.published += 1
            for name in STAGES:
                w.stage_sums[name] += float(stages.get(name, 0.0))
            if age is not None:
                w.age_sum += age
                w.age_count += 1
                w.age_max = max(w.age_max, age)
                w.age_min = min(w.age_min, age)

    def frame_rejected(self, reason: str) -> None:
        """Count a rejected frame; its ``reason`` is kept cut to ``MAX_REASON_CHARS``."""
        reason = shorten(reason)
        with self._lock:
            self.rejected += 1
            self._window.rejected += 1
            self.last_reject_reason = reason

    def frame_dropped(self) -> None:
        """Dropped because no model is serving."""
        with self._lock:
            self.dropped_no_model += 1

    def frame_superseded(self) -> None:
        """Segmented, not published: a newer frame's outputs went out first."""
        with self._lock:
            self.superseded += 1

    def frame_skipped(self) -> None:
        """Processed nothing because no output has a subscriber."""
        with self._lock:
            self.skipped_no_subscribers += 1

    def report(self, received_total: int, dropped_total: int, stale_timeout: float,
               warn_age: float, future_tolerance: float,
               past_limit: float) -> Tuple[int, str, List[Tuple[str, str]]]:
        """``(level, message, key/values)`` since the last report; starts a new window.

        Ages are the node's clock minus the header stamps (s). WARN levels, first match: frames
        rejected; no input for ``stale_timeout``; a stamp more than ``future_tolerance`` ahead
        of the node's clock or more than ``past_limit`` behind it (a clock offset, named);
        mean input age above ``warn_age``.
        """
        now = time.monotonic()
        with self._lock:
            w, self._window = self._window, _Window()
            span = max(now - self._window_start, 1e-6)
            self._window_start = now
            received = received_total - self._last_received_total
            self._last_received_total = received_total
            published, rejected, reason = self.published, self.rejected, self.last_reject_reason
        n = max(w.published, 1)
        values = [('input_hz', f'{received / span:.2f}'),
                  ('output_hz', f'{w.published / span:.2f}')]
        values += [(f'{name}_ms', f'{1000 * w.stage_sums[name] / n:.2f}') for name in STAGES]
        mean_age = w.age_sum / w.age_count if w.age_count else None
        aged = w.age_count > 0
        values += [('input_age_ms', '' if mean_age is None else f'{1000 * mean_age:.1f}'),
                   ('input_age_max_ms', f'{1000 * w.age_max:.1f}' if aged else ''),
                   ('input_age_min_ms', f'{1000 * w.age_min:.1f}' if aged else ''),
                   ('frames_received', str(received_total)), ('frames_published', str(published)),
                   ('frames_dropped', str(dropped_total + self.dropped_no_model)),
                   ('frames_rejected', str(rejected)),
                   ('frames_superseded', str(self.superseded)),
                   ('frames_skipped_no_subscribers', str(self.skipped_no_subscribers))]
        idle = now - self.last_input_time if self.last_input_time is not None else None
        level, message = OK, 'segmenting'
        if w.rejected:
            level, message = WARN, f'{w.rejected} frame(s) rejected: {reason}'
        elif idle is None or idle > stale_timeout:
            level = WARN
            message = (f'no input on {self.topic} yet' if idle is None
                       else f'no input on {self.topic} for {idle:.1f} s')
        elif aged and -w.age_min > future_tolerance:
            level = WARN
            message = (f'input stamps up to {-w.age_min:.3f} s in the future: the camera clock '
                       f"is ahead of this node's (tolerance {future_tolerance} s)")
        elif aged and w.age_max > past_limit:
            level = WARN
            message = (f'input stamps up to {w.age_max:.3f} s in the past: the camera clock is '
                       "behind this node's, or a bag is replayed without use_sim_time (limit "
                       f'{past_limit} s)')
        elif mean_age is not None and mean_age > warn_age:
            level, message = WARN, f'input age at publish {mean_age:.2f} s > {warn_age} s'
        elif not w.published:
            message = 'receiving, nothing published (no subscribers or rate cap)'
        return level, message, values


def diagnostic_status(name: str, hardware_id: str, level: int, message: str,
                      values: List[Tuple[str, str]]) -> Any:
    """A ``diagnostic_msgs/DiagnosticStatus``; the name, message, hardware id and every key
    and value are cut to :data:`~bisenet_ros.limits.MAX_DIAGNOSTIC_CHARS` (a reason may quote
    untrusted input; reject reasons are cut to ``MAX_REASON_CHARS`` where they are counted)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    def cut(text: Any) -> str:
        return shorten(text, MAX_DIAGNOSTIC_CHARS)
    return DiagnosticStatus(level=bytes([level]), name=cut(name), message=cut(message),
                            hardware_id=cut(hardware_id),
                            values=[KeyValue(key=cut(k), value=cut(v)) for k, v in values])
