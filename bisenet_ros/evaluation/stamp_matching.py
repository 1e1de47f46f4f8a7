"""Pair camera images with ground truth (or predictions) by header stamp, in stream order.

Pure Python; no bag or ROS code. Items arrive in log-time order, possibly interleaved
arbitrarily within a time window. An image is released (in arrival order) as soon as its partner
is found, or without a partner once the stream has moved ``window_ns`` past it. Partners that
never meet an image are counted, never silently dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple


@dataclass
class MatchCounts:
    """Bookkeeping of the pairing; every input item lands in exactly one count."""

    images: int = 0
    matched: int = 0
    images_without_partner: int = 0
    partners: int = 0
    partners_without_image: int = 0
    duplicate_partner_stamps: int = 0

    def as_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Pair:
    """An image payload and its partner (``None`` when unmatched)."""

    stamp_ns: int
    log_time_ns: int
    image: Any
    partner: Any = None
    matched: bool = False


class StampMatcher:
    """Match images to partners whose stamp is within ``tolerance_ns`` (nearest wins).

    Args:
        window_ns: how far (log time) the stream may move past an item before it is given up.
        tolerance_ns: 0 = exact stamp equality.
    """

    def __init__(self, window_ns: int = 2_000_000_000, tolerance_ns: int = 0) -> None:
        if window_ns < 0 or tolerance_ns < 0:
            raise ValueError('window and tolerance must be >= 0')
        self.window_ns = int(window_ns)
        self.tolerance_ns = int(tolerance_ns)
        self.counts = MatchCounts()
        self._pending: Deque[Pair] = deque()
        self._partners: Dict[int, Tuple[int, Any]] = {}

    @property
    def pending(self) -> int:
        """Images waiting for a partner."""
        return len(self._pending)

    def add_image(self, stamp_ns: int, log_time_ns: int, image: Any) -> List[Pair]:
        """Add an image; returns the pairs that are now final, in image order."""
        self.counts.images += 1
        pair = Pair(int(stamp_ns), int(log_time_ns), image)
        self._pending.append(pair)
        self._attach(pair)
        return self._release(int(log_time_ns))

    def add_partner(self, stamp_ns: int, log_time_ns: int, partner: Any) -> List[Pair]:
        """Add a ground-truth (or prediction) item; returns the pairs that are now final."""
        self.counts.partners += 1
        stamp_ns = int(stamp_ns)
        if stamp_ns in self._partners:
            self.counts.duplicate_partner_stamps += 1
            self.counts.partners_without_image += 1  # the earlier one can never be used
        self._partners[stamp_ns] = (int(log_time_ns), partner)
        for pair in self._pending:
            if not pair.matched:
                self._attach(pair)
        return self._release(int(log_time_ns))

    def flush(self) -> List[Pair]:
        """End of stream: release every pending image; count partners left over."""
        released = self._release(None)
        self.counts.partners_without_image += len(self._partners)
        self._partners.clear()
        return released

    def _attach(self, pair: Pair) -> None:
        key = self._find(pair.stamp_ns)
        if key is not None:
            pair.partner = self._partners.pop(key)[1]
            pair.matched = True

    def _find(self, stamp_ns: int) -> Optional[int]:
        if stamp_ns in self._partners:
            return stamp_ns
        if not self.tolerance_ns or not self._partners:
            return None
        best = min(self._partners, key=lambda s: abs(s - stamp_ns))
        return best if abs(best - stamp_ns) <= self.tolerance_ns else None

    def _release(self, now_ns: Optional[int]) -> List[Pair]:
        out: List[Pair] = []
        while self._pending:
            front = self._pending[0]
            expired = now_ns is None or now_ns - front.log_time_ns > self.window_ns
            if not (front.matched or expired):
                break
            self._pending.popleft()
            if front.matched:
                self.counts.matched += 1
            else:
                self.counts.images_without_partner += 1
            out.append(front)
        if now_ns is not None:
            stale = [s for s, (log, _) in self._partners.items() if now_ns - log > self.window_ns]
            for stamp in stale:
                del self._partners[stamp]
                self.counts.partners_without_image += 1
        return out
