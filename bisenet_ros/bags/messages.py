"""Image messages in bags: CDR bytes <-> numpy arrays, without rclpy.

Messages are (de)serialised with the ``rosbags`` type store (pure Python); the CDR bytes are the
same ones rclpy publishes and receives (``Publisher.publish(bytes)``, raw subscriptions), so the
live replay and the offline reader share this one implementation. Pixel conversion is the node's
own :mod:`bisenet_ros.image_conversions` (plain numpy, no rclpy).
"""

from __future__ import annotations

from functools import lru_cache
import struct
from typing import Any, Optional

import numpy as np

from .. import image_conversions as conversions
from ..limits import check_pixels, DEFAULT_MAX_INPUT_PIXELS, LimitError

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


class MessageError(ValueError):
    """A message cannot be turned into an image; says what was expected and what arrived."""


@lru_cache(maxsize=None)
def typestore(distro: str = 'kilted') -> Any:
    """The ``rosbags`` type store of a ROS 2 distribution (``humble``, ``jazzy``, ``kilted``)."""
    try:
        from rosbags.typesys import get_typestore, Stores
    except ImportError as exc:  # pragma: no cover - rosbags is a requirement of the bag tools
        raise RuntimeError('the bag tools need the rosbags library: pip install rosbags') from exc
    try:
        return get_typestore(Stores[f'ROS2_{distro.upper()}'])
    except KeyError:
        raise ValueError(f"unknown ROS 2 distribution '{distro}' for message types") from None


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (``sec``, ``nanosec``) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _header(stamp_ns: int, frame_id: str, distro: str) -> Any:
    types = typestore(distro).types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_cdr(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: Optional[str] = None,
              distro: str = 'kilted') -> bytes:
    """Serialise an ``(H, W, 3)`` uint8 BGR image or ``(H, W)`` uint8 map as sensor_msgs/Image.

    ``encoding`` defaults to ``bgr8`` for 3 channels and ``mono8`` for one.
    """
    encoding = encoding or ('mono8' if np.ndim(array) == 2 else 'bgr8')
    try:
        fields = conversions.array_to_image_fields(array, encoding)
    except (conversions.ConversionError, LimitError) as exc:
        raise MessageError(str(exc)) from exc
    fields['data'] = np.frombuffer(fields['data'], np.uint8)
    header = _header(stamp_ns, frame_id, distro)
    msg = typestore(distro).types[IMAGE_TYPE](header=header, **fields)
    return bytes(typestore(distro).serialize_cdr(msg, IMAGE_TYPE))


def compressed_cdr(array_bgr: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = 'jpeg',
                   quality: int = 90, distro: str = 'kilted') -> bytes:
    """Serialise a BGR uint8 image as sensor_msgs/CompressedImage (``jpeg`` or ``png``)."""
    import cv2
    ext, params = (('.png', []) if fmt == 'png'
                   else ('.jpg', [cv2.IMWRITE_JPEG_QUALITY, int(quality)]))
    ok, buf = cv2.imencode(ext, array_bgr, params)
    if not ok:
        raise MessageError(f'OpenCV could not encode a {array_bgr.shape} image as {fmt}')
    msg = typestore(distro).types[COMPRESSED_TYPE](
        header=_header(stamp_ns, frame_id, distro), format=fmt, data=buf.reshape(-1))
    return bytes(typestore(distro).serialize_cdr(msg, COMPRESSED_TYPE))


def deserialize(raw: bytes, msgtype: str, distro: str = 'kilted') -> Any:
    """CDR bytes -> rosbags message object of ``msgtype``."""
    try:
        return typestore(distro).deserialize_cdr(raw, msgtype)
    except Exception as exc:  # rosbags raises plain errors for truncated buffers
        raise MessageError(f'cannot decode {len(raw)} bytes as {msgtype}: {exc}') from exc


def header_stamp_ns(raw: bytes) -> int:
    """Header stamp of a serialised message whose first field is a std_msgs/Header (ns).

    Reads the 8 bytes after the 4-byte CDR encapsulation header; no full deserialisation.
    """
    if len(raw) < 12:
        raise MessageError(f'message of {len(raw)} bytes is too short to hold a header')
    order = '<' if raw[1] in (1, 3) else '>'
    sec, nanosec = struct.unpack(f'{order}iI', bytes(raw[4:12]))
    return sec * 1_000_000_000 + nanosec


def image_msg_to_array(msg: Any, labels: bool = False) -> np.ndarray:
    """sensor_msgs Image or CompressedImage -> BGR ``(H, W, 3)`` uint8 (or ``(H, W)`` labels).

    Uses :mod:`bisenet_ros.image_conversions` (plain numpy; every encoding the node
    accepts). ``labels=True`` expects a one-channel map (mono8/8UC1, mono16 for more than 255
    classes, or a PNG) and returns the class ids.
    """
    try:
        if hasattr(msg, 'format'):  # CompressedImage
            if not labels:
                return conversions.compressed_to_color(msg).pixels
            return conversions.decode_encoded(  # bounded like every decoded image
                msg.data, DEFAULT_MAX_INPUT_PIXELS,
                f"compressed label image (format '{msg.format}')", labels=True)
        if labels:
            check_pixels(int(msg.width), int(msg.height), DEFAULT_MAX_INPUT_PIXELS,
                         f"label image '{msg.encoding}'")
            array = conversions.image_to_array(msg)
            if array.ndim != 2 or array.dtype not in (np.uint8, np.uint16):
                raise MessageError(f"label image must be mono8/8UC1 (mono16 above 255 "
                                   f"classes), got encoding '{msg.encoding}'")
            return array
        return conversions.image_to_color(msg).to_bgr()
    except (conversions.ConversionError, LimitError) as exc:
        raise MessageError(str(exc)) from exc


def restamp_cdr(raw: bytes, stamp_ns: int) -> bytes:
    """Copy of a serialised header-first message with its header stamp replaced."""
    if len(raw) < 12:
        raise MessageError(f'message of {len(raw)} bytes is too short to hold a header')
    order = '<' if raw[1] in (1, 3) else '>'
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return bytes(raw[:4]) + struct.pack(f'{order}iI', sec, nanosec) + bytes(raw[12:])
