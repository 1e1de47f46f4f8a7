"""Latest-frame-wins hand-over between subscription callbacks and the inference worker.

One slot per camera holds only the newest message; a message that is replaced before the worker
takes it is counted as dropped. :meth:`LatestFrameSlots.take` blocks until at least one camera
has a frame it may process under the rate cap, and returns every such frame at once so that the
worker can batch them into one inference call. The rate cap lives here, not in the waiting call:
:meth:`LatestFrameSlots.set_rate` re-plans every camera from its last frame taken and wakes a
waiting :meth:`~LatestFrameSlots.take`, so a change applies at once in both directions.

Fair share of the worker: the worker reports the seconds each camera's frames took
(:meth:`LatestFrameSlots.charge`). While a camera that used less worker time has a frame
waiting, a camera that is ahead of it by more than that camera's last frame waits: a 4K camera
whose frames take seconds gets its turn after the small cameras caught up, not every round, so
each active camera gets an equal share of the worker, and an idle worker serves anyone.
Cameras of equal cost stay within one frame of each other and keep sharing batched calls.

The rate cap runs on the clock it is given (``clock``): the node hands in its ROS clock, so with
``use_sim_time`` a bag replayed at twice real time is capped in simulated seconds, and a paused
simulation holds the next frame until its clock moves. Waits on such a clock are polled every
:data:`SIM_POLL_S` of wall time. Worker time (the fair share) is always wall time. Plain Python
(no rclpy).
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
import time
from typing import Any, Callable, List, Optional


#: Seconds without a new frame after which a camera no longer counts in the fair share.
IDLE_S = 2.0
#: Wall seconds between looks at a clock other than ``time.monotonic`` while a frame waits
#: for its rate-cap slot.
SIM_POLL_S = 0.02


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
    """Per-camera single-slot buffers with counters and a per-camera rate cap.

    Args:
        cameras: Number of cameras (slots).
        max_rate: Most frames per second per camera (0: no cap); see :meth:`set_rate`.
        clock: Seconds of the clock the rate cap runs on (default: ``time.monotonic``; the
            node's ROS clock follows ``use_sim_time``).
    """

    def __init__(self, cameras: int, max_rate: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if cameras < 1:
            raise ValueError(f'need at least one camera, got {cameras}')
        self._clock = clock
        self._poll = None if clock is time.monotonic else SIM_POLL_S
        self._cond = threading.Condition()
        self._slots: List[Optional[Frame]] = [None] * cameras
        self._period = _period(max_rate)
        self._next_allowed = [0.0] * cameras
        self._last_taken: List[Optional[float]] = [None] * cameras
        self._used = [0.0] * cameras  # worker seconds charged, relative to the active minimum
        self._cost = [0.0] * cameras  # seconds of the camera's last frame
        self._last_put = [-1e9] * cameras
        self._closed = False
        #: Messages stored per camera.
        self.received = [0] * cameras
        #: Messages replaced by a newer one before the worker took them (overload or rate cap).
        self.dropped = [0] * cameras
        #: Frames handed to the worker per camera.
        self.taken = [0] * cameras
        self._in_flight = [0] * cameras  # taken, not yet reported :meth:`finished`

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

    def take(self, timeout: Optional[float] = None, batch_wait: float = 0.0,
             limit: Optional[int] = None) -> List[Frame]:
        """Wait for frames that may be processed now and take them out of their slots.

        A camera that is not yet due under the rate cap keeps its slot (newer messages still
        replace it) until it is.

        Args:
            timeout: Seconds to wait at most; ``None`` waits until a frame or :meth:`close`.
            batch_wait: Once one camera has a frame, wait up to this many seconds for the other
                due cameras that are active (sent a frame within the last ``1 + 2 * batch_wait``
                seconds), so that they share one inference call.
            limit: At most this many frames (``None``: every due one): the cameras with fewer
                frames in progress (taken, not yet :meth:`finished`) first, then those that
                used less of the worker; with several inference streams each stream takes
                its share of the cameras.

        Returns:
            The due frames in camera order; empty on timeout or after :meth:`close`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        batch_deadline: Optional[float] = None
        with self._cond:
            while not self._closed:
                now = time.monotonic()  # wall: timeouts, batching, activity
                rate_now = self._clock()  # the rate cap's clock
                waiting = [i for i, f in enumerate(self._slots) if f is not None]
                for i in waiting:  # the clock went back (a replayed bag restarted): re-plan
                    last = self._last_taken[i]
                    if last is not None and rate_now < last:
                        self._last_taken[i], self._next_allowed[i] = None, rate_now
                due = self._fair([i for i in waiting if rate_now >= self._next_allowed[i]])
                if limit is not None and len(due) > limit:
                    due = sorted(sorted(due, key=lambda i: (self._in_flight[i], self._used[i],
                                                            i))[:limit])
                if due and batch_wait > 0 and len(self._slots) > 1 \
                        and (limit is None or len(due) < limit):
                    batch_deadline = batch_deadline or now + batch_wait
                    missing = [i for i, f in enumerate(self._slots)
                               if f is None and rate_now >= self._next_allowed[i]
                               and now - self._last_put[i] < 1.0 + 2.0 * batch_wait]
                    if missing and now < batch_deadline:
                        self._cond.wait(batch_deadline - now)
                        continue
                if due:
                    return self._pop(due, rate_now)
                wait = None if deadline is None else deadline - now
                if waiting:
                    soonest = min(self._next_allowed[i] for i in waiting) - rate_now
                    if self._poll is not None:  # another clock: look at it again soon
                        soonest = min(max(soonest, 0.0), self._poll) or self._poll
                    wait = soonest if wait is None else min(wait, soonest)
                if wait is not None and wait <= 0:
                    if deadline is not None and now >= deadline:
                        return []
                    continue
                self._cond.wait(None if wait is None else min(wait, threading.TIMEOUT_MAX))
        return []

    def _pop(self, due: List[int], now: float) -> List[Frame]:
        frames = []
        period = self._period
        for i in due:
            frames.append(self._slots[i])
            self._slots[i] = None
            self.taken[i] += 1
            self._in_flight[i] += 1
            self._last_taken[i] = now
            # Keeps the long-run rate at max_rate with jittery input while never letting two
            # frames of one camera come less than half a period apart.
            self._next_allowed[i] = max(self._next_allowed[i] + period, now + 0.5 * period)
        return frames  # type: ignore[return-value]

    def _fair(self, due: List[int]) -> List[int]:
        """``due`` without the cameras ahead of another due camera by more than its last
        frame's cost (never empty when ``due`` is not)."""
        if len(due) < 2:
            return due
        floor = min(self._used[i] + self._cost[i] for i in due)
        return [i for i in due if self._used[i] <= floor]

    def charge(self, cameras: List[int], seconds: float) -> None:
        """The worker spent ``seconds`` on one call for the frames of ``cameras`` (shared
        equally). Cameras without a frame for :data:`IDLE_S` stop counting toward the share."""
        if not cameras:
            return
        share = max(float(seconds), 0.0) / len(cameras)
        with self._cond:
            now = time.monotonic()
            for i in cameras:
                self._used[i] += share
                self._cost[i] = share
            active = [i for i, t in enumerate(self._last_put) if now - t < IDLE_S] or cameras
            base = min(self._used[i] for i in active)
            self._used = [max(u - base, 0.0) for u in self._used]
            self._cond.notify_all()

    def finished(self, frames: List[Frame]) -> None:
        """The worker is done with ``frames`` (from one :meth:`take`), whatever came of them."""
        with self._cond:
            for frame in frames:
                self._in_flight[frame.camera] = max(0, self._in_flight[frame.camera] - 1)

    def set_rate(self, max_rate: float) -> None:
        """Cap each camera at ``max_rate`` frames per second (0: no cap) from now on.

        Each camera's next frame is due one new period after its last frame taken (at once
        when none was taken, or without a cap); a waiting :meth:`take` re-plans with it.
        """
        with self._cond:
            self._period = _period(max_rate)
            self._next_allowed = [0.0 if t is None else t + self._period
                                  for t in self._last_taken]
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiting :meth:`take`, which then returns an empty list."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _period(max_rate: float) -> float:
    """Seconds between frames of one camera at ``max_rate`` Hz (0: no cap)."""
    if not max_rate >= 0:
        raise ValueError(f'max_rate must be >= 0, got {max_rate}')
    return 1.0 / max_rate if max_rate > 0 else 0.0
