"""Replay camera frames through a running segmentation node and record its masks (rclpy).

The only rclpy code of the bag evaluation. Messages travel as serialised CDR bytes
(``Publisher.publish(bytes)`` and raw subscriptions), prepared and decoded by the pure
:mod:`bisenet_ros.bags.messages`, so this module only times sends and receptions.

* :func:`replay`: publish frames at their recorded spacing (or a multiple) and record every mask
  with its arrival time; latency = arrival of the mask - publication of the image.
* :func:`listen`: only listen while someone else plays the bag (``ros2 bag play``); latency =
  arrival of the mask - arrival of the image with the same stamp at this listener.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ...bags.messages import header_stamp_ns
from .spin_thread import SpinThread

LOG = logging.getLogger(__name__)


class ReplayError(RuntimeError):
    """The node could not be reached or did not answer; the message says what to check."""


@dataclass
class Reception:
    """A message received: header stamp (ns), ``time.monotonic()`` at arrival, CDR bytes."""

    stamp_ns: int
    time_s: float
    cdr: bytes


@dataclass
class ReplayRecord:
    """What happened on the wire. Times are ``time.monotonic()`` seconds."""

    sent: Dict[int, float] = field(default_factory=dict)
    masks: List[Reception] = field(default_factory=list)
    images: Dict[int, float] = field(default_factory=dict)
    warmup_s: Optional[float] = None
    started_s: float = 0.0
    finished_s: float = 0.0


class _Endpoint:
    """Raw CDR in and out on the node of a :class:`SpinThread` (its own context and thread)."""

    def __init__(self, image_topic: str, mask_topic: str, publish: bool, record_images: bool,
                 node_name: str, domain_id: Optional[int]) -> None:
        self.spin = SpinThread(node_name, domain_id)
        self.lock = self.spin.lock
        self.record = ReplayRecord()
        self.answered: Set[int] = set()  # stamps with a mask, kept for cheap polling
        try:
            node = self.spin.node
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            self.mask_sub = node.create_subscription(Image, mask_topic, self._on_mask, qos,
                                                     raw=True)
            self._publisher: Optional[Publisher] = node.create_publisher(
                Image, image_topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            ) if publish else None
            if record_images:
                best_effort = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)
                node.create_subscription(Image, image_topic, self._on_image, best_effort,
                                         raw=True)
        except BaseException:
            self.spin.close()
            raise

    def _on_mask(self, raw: bytes) -> None:
        now = time.monotonic()
        with self.lock:
            stamp = header_stamp_ns(raw)
            self.record.masks.append(Reception(stamp, now, bytes(raw)))
            self.answered.add(stamp)

    def _on_image(self, raw: bytes) -> None:
        now = time.monotonic()
        with self.lock:
            self.record.images.setdefault(header_stamp_ns(raw), now)

    @property
    def publisher(self) -> Publisher:
        """The image publisher; only an endpoint made with ``publish`` has one."""
        if self._publisher is None:
            raise RuntimeError('this endpoint only listens: it has no image publisher')
        return self._publisher

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """:meth:`SpinThread.wait_for`: raises a callback's exception instead of timing out."""
        return self.spin.wait_for(predicate, timeout_s)

    def close(self) -> None:
        self.spin.close()


def replay(frames: Sequence[Any], image_topic: str = '/camera/image_raw',
           mask_topic: str = '/segmentation/mask', rate_scale: float = 1.0,
           connect_timeout_s: float = 60.0, warmup_timeout_s: float = 120.0,
           drain_s: float = 5.0, on_sent: Optional[Callable[[int], None]] = None,
           domain_id: Optional[int] = None, max_in_flight: int = 0,
           answer_timeout_s: float = 20.0) -> ReplayRecord:
    """Publish ``frames`` at ``offset_s / rate_scale`` and record the node's masks.

    ``frames`` have ``stamp_ns``, ``offset_s`` and ``cdr`` (sensor_msgs/Image bytes), e.g.
    :class:`bisenet_ros.evaluation.live.OutgoingFrame`.

    First waits until the node subscribes to ``image_topic`` and publishes ``mask_topic``, then
    sends the first frame under a stamp outside the bag (1 s before it) until a mask for it
    comes back (model loading and first-call costs stay out of the figures). After the last
    frame, waits up to ``drain_s`` seconds for outstanding masks. ``domain_id``: default
    ``ROS_DOMAIN_ID``.

    ``max_in_flight > 0`` paces the replay to the node: a frame waits (up to
    ``answer_timeout_s``) until fewer than that many published frames lack a mask, so a slow
    node is measured frame by frame instead of dropping most of a fast replay. The schedule
    then shifts by the wait; the recorded rate remains the upper bound.

    Raises:
        ReplayError: no node found, or no answer to the warm-up frame.
    """
    if rate_scale <= 0:
        raise ValueError(f'rate scale must be > 0, got {rate_scale}')
    if not frames:
        raise ValueError('nothing to replay: no frames')
    endpoint = _Endpoint(image_topic, mask_topic, True, False, 'bisenet_replay', domain_id)
    try:
        pub, sub = endpoint.publisher, endpoint.mask_sub
        if not endpoint.wait_for(lambda: pub.get_subscription_count() > 0
                                 and sub.get_publisher_count() > 0, connect_timeout_s):
            raise ReplayError(
                f'after {connect_timeout_s:.0f} s: {pub.get_subscription_count()} subscriber(s) '
                f'on {image_topic} and {sub.get_publisher_count()} publisher(s) on '
                f'{mask_topic}; is the segmentation node running on this ROS_DOMAIN_ID with '
                'these topics?')
        endpoint.record.warmup_s = _warm_up(endpoint, frames[0], warmup_timeout_s, mask_topic)
        with endpoint.lock:
            endpoint.record.masks.clear()
        start = time.monotonic()
        endpoint.record.started_s = start
        shift = 0.0
        for frame in frames:
            if max_in_flight > 0:
                endpoint.wait_for(lambda: _in_flight(endpoint) < max_in_flight,
                                  answer_timeout_s)
                due = start + shift + frame.offset_s / rate_scale
                shift += max(0.0, time.monotonic() - due)  # late: later frames move too
            delay = start + shift + frame.offset_s / rate_scale - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the recorded frame spacing: the rate is what is replayed
            endpoint.spin.check()  # a failed callback ends the replay now, with its error
            pub.publish(frame.cdr)
            with endpoint.lock:
                endpoint.record.sent[frame.stamp_ns] = time.monotonic()
            if on_sent:
                on_sent(1)
        expected = set(endpoint.record.sent)
        endpoint.wait_for(lambda: expected <= endpoint.answered, drain_s)
        endpoint.record.finished_s = time.monotonic()
        with endpoint.lock:  # late answers to repeated warm-up frames are not part of the run
            endpoint.record.masks = [m for m in endpoint.record.masks
                                     if m.stamp_ns != _warmup_stamp(frames[0])]
            return endpoint.record
    finally:
        endpoint.close()


def _warmup_stamp(frame: Any) -> int:
    return int(frame.stamp_ns) - 1_000_000_000


def _in_flight(endpoint: _Endpoint) -> int:
    """Published frames without a mask yet (call with the endpoint lock held)."""
    return len(endpoint.record.sent.keys() - endpoint.answered)


def _warm_up(endpoint: _Endpoint, frame: Any, timeout_s: float,
             mask_topic: str) -> float:
    """Send ``frame`` re-stamped 1 s earlier until its mask arrives; returns the wait (s)."""
    from ...bags.messages import restamp_cdr
    stamp = _warmup_stamp(frame)
    cdr = restamp_cdr(frame.cdr, stamp)
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        endpoint.publisher.publish(cdr)
        if endpoint.wait_for(lambda: stamp in endpoint.answered, 1.0):
            waited = time.monotonic() - start
            LOG.info('node answered the warm-up frame after %.2f s', waited)
            return waited
    raise ReplayError(f'the node subscribed but published nothing on {mask_topic} within '
                      f'{timeout_s:.0f} s of the first frame; check its log (model loading?)')


def listen(image_topic: str = '/camera/image_raw', mask_topic: str = '/segmentation/mask',
           first_message_timeout_s: float = 120.0, idle_timeout_s: float = 3.0,
           max_duration_s: Optional[float] = None,
           domain_id: Optional[int] = None) -> ReplayRecord:
    """Record images and masks while another process plays the bag.

    Ends ``idle_timeout_s`` after the last message, at ``max_duration_s``, or on Ctrl-C.
    Logs (INFO) when this listener first sees publishers of both ``image_topic`` (the player)
    and ``mask_topic`` (the node), or its first image: from then on the frames and masks reach
    it.

    Raises:
        ReplayError: nothing arrived within ``first_message_timeout_s``.
    """
    endpoint = _Endpoint(image_topic, mask_topic, False, True, 'bisenet_listener', domain_id)
    try:
        deadline = time.monotonic() + first_message_timeout_s
        node = endpoint.spin.node
        if endpoint.wait_for(lambda: bool(endpoint.record.images)
                             or (node.count_publishers(image_topic) > 0
                                 and node.count_publishers(mask_topic) > 0),
                             first_message_timeout_s):
            LOG.info('listening: %d publisher(s) on %s, %d on %s',
                     node.count_publishers(image_topic), image_topic,
                     node.count_publishers(mask_topic), mask_topic)
        if not endpoint.wait_for(lambda: bool(endpoint.record.images),
                                 max(0.0, deadline - time.monotonic())):
            raise ReplayError(f'no image on {image_topic} within {first_message_timeout_s:.0f}'
                              ' s; start `ros2 bag play <bag>` on the same ROS_DOMAIN_ID')
        start = time.monotonic()
        endpoint.record.started_s = start

        def idle() -> bool:  # called with the endpoint lock held
            last = max(list(endpoint.record.images.values())
                       + [m.time_s for m in endpoint.record.masks])
            return time.monotonic() - last > idle_timeout_s

        try:
            endpoint.wait_for(idle, float('inf') if max_duration_s is None
                              else max(0.0, max_duration_s))
        except KeyboardInterrupt:
            LOG.info('stopped listening (Ctrl-C)')
        endpoint.record.finished_s = time.monotonic()
        with endpoint.lock:
            return endpoint.record
    finally:
        endpoint.close()
