"""A bag as a stream of frames: ``(stamp, image[, ground truth])`` in recorded order.

This generator is the only thing the evaluation code needs from a bag; it has no ROS graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from ..bags import messages
from ..bags.make import COMPRESSED_SUFFIX, IMAGE_TOPIC, LABEL_TOPIC
from ..bags.reader import BagReader
from .stamp_matching import MatchCounts, Pair, StampMatcher


@dataclass
class Frame:
    """One camera frame read from a bag.

    Attributes:
        index: position among the bag's images (0-based).
        stamp_ns: header stamp, nanoseconds.
        log_time_ns: time the recorder received it, nanoseconds.
        image: ``(H, W, 3)`` uint8 BGR.
        ground_truth: ``(H, W)`` uint8 class ids (255 = unlabelled) or ``None``.
    """

    index: int
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    image: np.ndarray
    ground_truth: Optional[np.ndarray] = None


def resolve_image_topic(reader: BagReader, requested: str = IMAGE_TOPIC) -> str:
    """``requested`` if the bag has it; for the default raw topic also accept its compressed
    sibling. Raises :class:`~bisenet_ros.bags.reader.BagError` listing the bag's topics."""
    if requested not in reader.topics and requested + COMPRESSED_SUFFIX in reader.topics:
        requested = requested + COMPRESSED_SUFFIX
    reader.require_topic(requested, messages.IMAGE_TYPES)
    return requested


def resolve_label_topic(reader: BagReader, requested: Optional[str]) -> Optional[str]:
    """``'auto'``: the default label topic when present, else ``None``; a name must exist."""
    if requested == 'auto':
        return LABEL_TOPIC if LABEL_TOPIC in reader.topics else None
    if requested:
        reader.require_topic(requested, messages.IMAGE_TYPES)
    return requested or None


class BagFrames:
    """Iterate a bag's images, each paired with the ground truth of the same header stamp.

    Args:
        reader: an open :class:`BagReader`.
        image_topic: sensor_msgs/Image or CompressedImage topic (must exist).
        label_topic: mono8 label topic, or ``None`` for no ground truth.
        window_s: how long (bag time) to wait for a partner before giving up on it.
        tolerance_s: stamps closer than this still match (0 = exact).
        limit: stop after this many images.

    After iteration, :attr:`counts` says how many images had ground truth and how many did not.
    """

    def __init__(self, reader: BagReader, image_topic: str, label_topic: Optional[str] = None,
                 window_s: float = 2.0, tolerance_s: float = 0.0,
                 limit: Optional[int] = None) -> None:
        self.reader = reader
        self.image_topic = image_topic
        self.label_topic = label_topic
        self.limit = limit
        self._matcher = StampMatcher(int(window_s * 1e9), int(tolerance_s * 1e9))
        count = reader.topics[image_topic].count
        self.total = min(count, limit) if (count is not None and limit) else (count or limit)

    @property
    def counts(self) -> MatchCounts:
        """How images and ground truth were paired so far."""
        return self._matcher.counts

    def __iter__(self) -> Iterator[Frame]:
        topics = [self.image_topic] + ([self.label_topic] if self.label_topic else [])
        emitted = 0
        for msg in self.reader.messages(topics):
            decoded = msg.decode()
            stamp = messages.stamp_to_ns(decoded.header.stamp)
            try:
                if msg.topic == self.image_topic:
                    if self.limit is not None and self._matcher.counts.images >= self.limit:
                        if self._matcher.pending:
                            continue  # keep reading labels for the images still waiting
                        break
                    image = messages.image_msg_to_array(decoded)
                    ready = self._matcher.add_image(stamp, msg.log_time_ns,
                                                    (str(decoded.header.frame_id), image))
                else:
                    labels = messages.image_msg_to_array(decoded, labels=True)
                    ready = self._matcher.add_partner(stamp, msg.log_time_ns, labels)
            except messages.MessageError as exc:
                raise messages.MessageError(f'bag {self.reader.path}, topic {msg.topic}, '
                                            f'stamp {stamp} ns: {exc}') from exc
            for pair in ready:
                yield self._frame(emitted, pair)
                emitted += 1
        for pair in self._matcher.flush():
            yield self._frame(emitted, pair)
            emitted += 1

    def _frame(self, index: int, pair: Pair) -> Frame:
        frame_id, image = pair.image
        return Frame(index, pair.stamp_ns, pair.log_time_ns, frame_id, image,
                     pair.partner if pair.matched else None)
