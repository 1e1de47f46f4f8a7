"""One rclpy node in its own context, spun by its own executor thread; callback errors surface.

:class:`SpinThread` is what an in-process ROS endpoint needs (the bag replay, the test probe):
it owns a :class:`rclpy.context.Context`, a node in it, a ``SingleThreadedExecutor`` and the
thread that spins it. The first exception a callback raises stops the spinning and is raised
again in whichever thread waits (:meth:`SpinThread.wait_for`, :meth:`SpinThread.check`), so a
callback bug shows up as that exception at once, not as a timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

LOG = logging.getLogger(__name__)


class SpinThread:
    """A node named ``node_name`` on ``domain_id`` (default ``ROS_DOMAIN_ID``), spinning.

    Callbacks that change what a waiter looks at hold :attr:`lock` (a ``threading.Condition``);
    waiters are woken after every callback. Close with :meth:`close` (or use ``with``).
    """

    def __init__(self, node_name: str, domain_id: Optional[int] = None,
                 poll_s: float = 0.02) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        try:
            self.node = Node(node_name, context=self.context)
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise
        self.lock = threading.Condition()
        self._poll_s = poll_s
        self._error: Optional[BaseException] = None
        self._closing = False
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f'spin {node_name}',
                                        daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while not self._closing and self.context.ok():
                self._executor.spin_once()
                with self.lock:
                    self.lock.notify_all()
        except BaseException as exc:  # handed to the waiter, not swallowed
            if self._closing or not self.context.ok():
                return  # shutting down: the executor or context went away under spin_once
            LOG.error('a callback of node %s raised %s: %s; the node stopped spinning',
                      self.node.get_name(), type(exc).__name__, exc)
            with self.lock:
                self._error = exc
                self.lock.notify_all()

    @property
    def spinning(self) -> bool:
        """True until :meth:`close` or a callback's exception stopped the executor thread."""
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise the exception a callback raised, if one did (the same object each time)."""
        with self.lock:
            if self._error is not None:
                raise self._error

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``predicate()`` is true or ``timeout_s`` seconds passed; its last value.

        ``predicate`` is evaluated holding :attr:`lock` (it must not take it) after every
        callback, and at least every ``poll_s`` for conditions no callback announces (counts of
        publishers and subscribers on the graph, the clock).

        Raises:
            The first exception raised by a callback of this node, as soon as it happened.
        """
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                if self._error is not None:
                    raise self._error
                if predicate():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(min(left, self._poll_s))

    def close(self) -> None:
        """Stop spinning, destroy the node, shut the context down. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._executor.shutdown(timeout_sec=1.0)  # wakes spin_once
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> 'SpinThread':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
