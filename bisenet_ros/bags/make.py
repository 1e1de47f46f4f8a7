"""Turn an image + label dataset into a ROS 2 bag: camera images and ground-truth label maps.

Topics (defaults): ``/camera/image_raw`` sensor_msgs/Image (bgr8 or rgb8),
``/camera/image_raw/compressed`` sensor_msgs/CompressedImage (optional, jpeg) and
``/camera/labels`` sensor_msgs/Image mono8 holding class ids with 255 = unlabelled. Frame ``i``
has header stamp ``start + i / rate`` on every topic; that stamp is how evaluation pairs a
prediction with its ground truth. Log (receive) time equals the stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..images import reverse_channels
from . import messages
from .writer import BagWriter

LOG = logging.getLogger(__name__)

IMAGE_TOPIC = '/camera/image_raw'
LABEL_TOPIC = '/camera/labels'
COMPRESSED_SUFFIX = '/compressed'


@dataclass
class BagTopics:
    """Topic names written by :func:`write_frames_bag`."""

    image: str = IMAGE_TOPIC
    labels: Optional[str] = LABEL_TOPIC
    compressed: Optional[str] = None  # e.g. IMAGE_TOPIC + COMPRESSED_SUFFIX


@dataclass
class BagSummary:
    """What was written: path, storage, frame count, stamps (ns) and topics."""

    path: Path
    storage: str
    frames: int
    first_stamp_ns: int
    last_stamp_ns: int
    topics: List[str]
    backend: str


#: ``load(i) -> (rgb (H, W, 3) uint8, labels (H, W) uint8 or None)``
FrameLoader = Callable[[int], Tuple[np.ndarray, Optional[np.ndarray]]]


def select_indices(count: int, start: int = 0, stride: int = 1,
                   limit: Optional[int] = None) -> List[int]:
    """Indices ``start, start+stride, ...`` below ``count``, at most ``limit`` of them."""
    if start < 0 or stride < 1 or (limit is not None and limit < 1):
        raise ValueError(f'need start >= 0, stride >= 1, limit >= 1; got start={start}, '
                         f'stride={stride}, limit={limit}')
    indices = list(range(start, count, stride))
    return indices[:limit] if limit is not None else indices


def write_frames_bag(load: FrameLoader, indices: Sequence[int], path: Union[str, Path], *,
                     storage: str = 'mcap', rate_hz: float = 10.0, frame_id: str = 'camera',
                     topics: Optional[BagTopics] = None, encoding: str = 'bgr8',
                     start_ns: Optional[int] = None, jpeg_quality: int = 90,
                     distro: str = 'kilted', backend: str = 'auto', overwrite: bool = False,
                     progress: Optional[Callable[[int], None]] = None) -> BagSummary:
    """Write frames ``load(i)`` for ``i`` in ``indices`` to a new bag at ``path``.

    Args:
        rate_hz: frames per second of the header stamps (> 0).
        encoding: ``bgr8`` or ``rgb8`` for the raw image topic.
        start_ns: stamp of the first frame; default: now, rounded to whole seconds.
        progress: called with 1 after each frame (e.g. a progress bar's ``update``).
    """
    topics = topics or BagTopics()
    if rate_hz <= 0:
        raise ValueError(f'rate must be > 0 Hz, got {rate_hz}')
    if encoding not in ('bgr8', 'rgb8'):
        raise ValueError(f"image encoding must be bgr8 or rgb8, got '{encoding}'")
    if not indices:
        raise ValueError('no frames selected for the bag')
    start_ns = int(time.time()) * 1_000_000_000 if start_ns is None else int(start_ns)
    period_ns = int(round(1e9 / rate_hz))
    stamp = start_ns
    with BagWriter(path, storage=storage, backend=backend, distro=distro,
                   overwrite=overwrite) as writer:
        writer.add_topic(topics.image, messages.IMAGE_TYPE)
        if topics.compressed:
            writer.add_topic(topics.compressed, messages.COMPRESSED_TYPE)
        if topics.labels:
            writer.add_topic(topics.labels, messages.IMAGE_TYPE)
        for n, index in enumerate(indices):
            stamp = start_ns + n * period_ns
            rgb, labels = load(index)
            image = rgb if encoding == 'rgb8' else reverse_channels(rgb)
            writer.write(topics.image, stamp,
                         messages.image_cdr(image, stamp, frame_id, encoding, distro))
            if topics.compressed:
                writer.write(topics.compressed, stamp, messages.compressed_cdr(
                    reverse_channels(rgb), stamp, frame_id,
                    quality=jpeg_quality, distro=distro))
            if topics.labels and labels is not None:
                if labels.shape != rgb.shape[:2]:
                    raise ValueError(f'frame {index}: labels {labels.shape} do not match image '
                                     f'{rgb.shape[:2]}')
                writer.write(topics.labels, stamp,
                             messages.image_cdr(labels.astype(np.uint8), stamp, frame_id,
                                                'mono8', distro))
            if progress:
                progress(1)
        backend_name = writer.backend_name
    written = [t for t in (topics.image, topics.compressed, topics.labels) if t]
    LOG.info('wrote %d frames to %s (%s)', len(indices), path, storage)
    return BagSummary(Path(path), storage, len(indices), start_ns, stamp, written, backend_name)
