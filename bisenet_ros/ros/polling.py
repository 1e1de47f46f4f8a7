"""Waiting for a condition that callbacks of another thread make true (no rclpy import)."""

from __future__ import annotations

import threading
import time
from typing import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float, lock: threading.Lock,
               poll_s: float = 0.01) -> bool:
    """Poll ``predicate`` (evaluated while holding ``lock``) until true or ``timeout_s`` passed.

    Returns the predicate's last value. The predicate must not take ``lock`` itself.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with lock:
            if predicate():
                return True
        time.sleep(poll_s)
    with lock:
        return predicate()
