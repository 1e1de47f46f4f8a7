"""Latest-frame-wins hand-over between subscription callbacks and the inference worker.

One slot per camera holds only the newest message; a message that is replaced before the worker
takes it is counted as dropped. :meth:`LatestFrameSlots.take` blocks until at least one camera
has a frame it may process under the rate cap, and returns every such frame at once so that the
worker can batch them into one inference call. Plain Python (no rclpy).
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
import time
from typing import Any, List, Optional


@dataclass
class Frame:
    """A message waiting for (or in) processing.

    Attributes:
        camera: Index of the camera (input topic).
        msg: The ROS message as received.
        received: ``time.monotonic()`` when the callback stored it, in seconds.
    """

    camera: int
    msg: Any
    received: float


class LatestFrameSlots:
    """Per-camera single-slot buffers with counters and a per-camera rate cap."""

    def __init__(self, cameras: int) -> None:
        if cameras < 1:
            raise ValueError(f'need at least one camera, got {cameras}')
        self._cond = threading.Condition()
        self._slots: List[Optional[Frame]] = [None] * cameras
        self._next_allowed = [0.0] * cameras
        self._last_put = [-1e9] * cameras
        self._closed = False
        #: Messages stored per camera.
        self.received = [0] * cameras
        #: Messages replaced by a newer one before the worker took them (overload or rate cap).
        self.dropped = [0] * cameras
        #: Frames handed to the worker per camera.
        self.taken = [0] * cameras

    @property
    def cameras(self) -> int:
        return len(self._slots)

    def put(self, camera: int, msg: Any) -> None:
        """Store ``msg`` as the newest frame of ``camera`` (replacing an unprocessed one)."""
        with self._cond:
            if self._slots[camera] is not None:
                self.dropped[camera] += 1
            self._slots[camera] = Frame(camera, msg, time.monotonic())
            self._last_put[camera] = self._slots[camera].received  # type: ignore[union-attr]
            self.received[camera] += 1
            self._cond.notify()

    def take(self, max_rate: float = 0.0, timeout: Optional[float] = None,
             batch_wait: float = 0.0) -> List[Frame]:
        """Wait for frames that may be processed now and take them out of their slots.

        Args:
            max_rate: Most frames per second per camera (0: no cap). A camera that is not yet
                due keeps its slot (newer messages still replace it) until it is.
            timeout: Seconds to wait at most; ``None`` waits until a frame or :meth:`close`.
            batch_wait: Once one camera has a frame, wait up to this many seconds for the other
                due cameras that are active (sent a frame within the last ``1 + 2 * batch_wait``
                seconds), so that they share one inference call.

        Returns:
            The due frames in camera order; empty on timeout or after :meth:`close`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        period = 1.0 / max_rate if max_rate > 0 else 0.0
        batch_deadline: Optional[float] = None
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                waiting = [i for i, f in enumerate(self._slots) if f is not None]
                due = [i for i in waiting if now >= self._next_allowed[i]]
                if due and batch_wait > 0 and len(self._slots) > 1:
                    batch_deadline = batch_deadline or now + batch_wait
                    missing = [i for i, f in enumerate(self._slots)
                               if f is None and now >= self._next_allowed[i]
                               and now - self._last_put[i] < 1.0 + 2.0 * batch_wait]
                    if missing and now < batch_deadline:
                        self._cond.wait(batch_deadline - now)
                        continue
                if due:
                    return self._pop(due, now, period)
                wait = None if deadline is None else deadline - now
                if waiting:
                    soonest = min(self._next_allowed[i] for i in waiting) - now
                    wait = soonest if wait is None else min(wait, soonest)
                if wait is not None and wait <= 0:
                    if deadline is not None and now >= deadline:
                        return []
                    continue
                self._cond.wait(wait)
        return []

    def _pop(self, due: List[int], now: float, period: float) -> List[Frame]:
        frames = []
        for i in due:
            frames.append(self._slots[i])
            self._slots[i] = None
            self.taken[i] += 1
            # Keeps the long-run rate at max_rate with jittery input while never letting two
            # frames of one camera come less than half a period apart.
            self._next_allowed[i] = max(self._next_allowed[i] + period, now + 0.5 * period)
        return frames  # type: ignore[return-value]

    def reset_rate(self) -> None:
        """Forget the rate-cap schedule (after ``max_rate`` changes)."""
        with self._cond:
            self._next_allowed = [0.0] * len(self._slots)
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting :meth:`take`, which then returns an empty list."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
