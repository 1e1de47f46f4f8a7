"""Recent messages by stamp, and a bounded wait for the one matching a frame (pure Python).

The node keeps the last few depth images and camera_infos here (filled by subscription
callbacks) and, once a mask is ready, asks for the entry whose stamp is within a tolerance of
the frame's, waiting at most a given time for a late one.
"""

from __future__ import annotations

from collections import deque
import threading
import time
from typing import Any, Deque, Optional, Tuple


class StampBuffer:
    """The ``capacity`` newest ``(stamp_ns, item)`` pairs; thread-safe."""

    def __init__(self, capacity: int = 10) -> None:
        self._items: Deque[Tuple[int, Any]] = deque(maxlen=capacity)
        self._changed = threading.Condition()

    def put(self, stamp_ns: int, item: Any) -> None:
        with self._changed:
            self._items.append((int(stamp_ns), item))
            self._changed.notify_all()

    def _nearest(self, stamp_ns: int, tolerance_ns: int) -> Optional[Any]:
        best = None
        for stamp, item in self._items:
            gap = abs(stamp - stamp_ns)
            if gap <= tolerance_ns and (best is None or gap < best[0]):
                best = (gap, item)
        return None if best is None else best[1]

    def wait_for(self, stamp_ns: int, tolerance_ns: int, timeout: float) -> Optional[Any]:
        """The item stamped nearest ``stamp_ns`` within ``tolerance_ns``, waiting up to
        ``timeout`` seconds for one to arrive; None when none did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._nearest(stamp_ns, tolerance_ns)
                left = deadline - time.monotonic()
                if found is not None or left <= 0:
                    return found
                self._changed.wait(left)

    def nearest_gap(self, stamp_ns: int) -> Optional[int]:
        """Nanoseconds from ``stamp_ns`` to the nearest stamp held (any distance), or None
        when empty: how far off the stamps are when nothing matched."""
        with self._changed:
            return min((abs(stamp - int(stamp_ns)) for stamp, _ in self._items), default=None)

    def clear(self) -> None:
        with self._changed:
            self._items.clear()
