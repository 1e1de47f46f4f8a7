"""One camera's topics: the input subscription(s) and the output publishers of its results.

Outputs are built only for publishers that have subscribers (an output nobody listens to costs
nothing), and every output carries the input's header (stamp and frame_id) and resolution.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Literal, Optional

import numpy as np
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..image_conversions import confidence_to_mono8, image_fields_and_pixels
from .topics import camera_info_topic
from .work import Outputs

#: Output name -> (parameter switching it, message type).
OUTPUTS = {'mask': ('publish_mask', Image), 'color_mask': ('publish_color_mask', Image),
           'overlay': ('publish_overlay', Image), 'confidence': ('publish_confidence', Image),
           'confidence_mono8': ('publish_confidence_mono8', Image),
           'points': ('publish_points', PointCloud2),
           'camera_info': ('publish_camera_info', CameraInfo),
           'groups': ('publish_groups', Image)}

OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


#: CDR representation ids (the first two bytes of a serialized message) of plain CDR, big and
#: little endian: a sequence field is its uint32 length, then its elements.
PLAIN_CDR: Dict[bytes, Literal['big', 'little']] = {b'\x00\x00': 'big', b'\x00\x01': 'little'}


def serialized_image(header: Any, array: np.ndarray, encoding: str) -> Any:
    """``array`` as a sensor_msgs/Image with ``header``, serialized for ``Publisher.publish``.

    rclpy serializes the message without its pixels; ``data``, the last field, ends that with a
    zero length, which is replaced by the pixels' length and the pixels: one copy of them,
    where filling and publishing an Image copies them four times (the mask, colour mask and
    overlay of a 640x480 frame took 3.4-4.0 ms of CPU instead of 6.5-7.1 on an AMD EPYC). An
    rmw whose serialization is not plain CDR gets the Image message itself.
    """
    fields, pixels = image_fields_and_pixels(array, encoding)
    msg = Image(**fields)
    msg.header = header
    head = serialize_message(msg)
    order = PLAIN_CDR.get(head[:2])
    if order is None or head[-4:] != bytes(4):
        msg.data = pixels.tobytes()
        return msg
    data = pixels.reshape(-1).view(np.uint8)
    return b''.join((head[:-4], data.size.to_bytes(4, order), data.data))


class CameraIO:
    """Subscriptions and publishers of one camera.

    Args:
        node: The owning node.
        index: Camera index handed to ``on_frame``.
        topic: Image topic (``/compressed`` is appended when ``compressed``).
        output_ns: Namespace of this camera's outputs (e.g. ``segmentation/cam_left``).
        on_frame: ``on_frame(index, serialized_msg)``, called from the subscription callback
            with the message's CDR bytes (see :meth:`deserialize`).
        callback_group: Group of the subscriptions.
    """

    def __init__(self, node: Node, index: int, topic: str, output_ns: str, compressed: bool,
                 use_camera_info: bool, on_frame: Callable[[int, Any], None],
                 callback_group: Any, depth_topic: str = '') -> None:
        self.index = index
        self.topic = f'{topic}/compressed' if compressed else topic
        self.msg_type = CompressedImage if compressed else Image
        self.latest_info: Optional[CameraInfo] = None
        self._node = node
        # raw=True: the callback gets the serialized message; only frames that are processed
        # are deserialized (a third of the CPU for a 30 Hz camera whose frames mostly drop).
        self.subscription = node.create_subscription(
            # A copy: rclpy writes the qos_overrides parameters into the profile it is given,
            # which would change the shared qos_profile_sensor_data of every later
            # subscription in the process (camera_info, depth).
            self.msg_type, self.topic, lambda raw: on_frame(index, raw),
            copy.copy(qos_profile_sensor_data), callback_group=callback_group, raw=True,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.info_subscription = None
        if use_camera_info:
            self.info_subscription = node.create_subscription(
                CameraInfo, camera_info_topic(topic), self._on_info, qos_profile_sensor_data,
                callback_group=callback_group)
        self.depth = None
        if depth_topic:
            from .depth_input import DepthInput
            self.depth = DepthInput(node, depth_topic, callback_group)
        self.publishers = {name: node.create_publisher(msg_type, f'{output_ns}/{name}',
                                                       OUTPUT_QOS)
                           for name, (_, msg_type) in OUTPUTS.items()
                           if name != 'points' or self.depth is not None}

    def deserialize(self, raw: bytes) -> Any:
        """The Image / CompressedImage from the bytes handed to ``on_frame``."""
        return deserialize_message(raw, self.msg_type)

    def _on_info(self, msg: CameraInfo) -> None:
        self.latest_info = msg

    def wanted(self, switches: Dict[str, bool]) -> Outputs:
        """Which outputs to produce now: switched on by parameter and subscribed to."""
        result = {}
        for name, (param, _) in OUTPUTS.items():
            on = switches.get(param, False)
            if name == 'camera_info':
                on = on and self.info_subscription is not None and self.latest_info is not None
            pub = self.publishers.get(name)
            result[name] = bool(on) and pub is not None and pub.get_subscription_count() > 0
        return Outputs.from_flags(result)

    def publish(self, header: Any, result: Any, wanted: Outputs, cloud: Any = None,
                groups: Optional[np.ndarray] = None) -> None:
        """Publish the wanted outputs of one :class:`SegmentationResult` with ``header``
        (its overlay is BGR; ``cloud``, a PointCloud2 made by :class:`DepthInput`, and
        ``groups``, ``(H, W)`` uint8 group ids, when given)."""
        if wanted.mask:
            labels = result.labels
            self._send('mask', header, labels, 'mono16' if labels.dtype == np.uint16
                       else 'mono8')
        if wanted.color_mask and result.color is not None:
            self._send('color_mask', header, result.color, 'rgb8')
        if wanted.overlay and result.overlay is not None:
            self._send('overlay', header, result.overlay, 'bgr8')
        if wanted.confidence and result.confidence is not None:
            self._send('confidence', header, result.confidence.astype(np.float32, copy=False),
                       '32FC1')
        if wanted.confidence_mono8 and result.confidence is not None:
            self._send('confidence_mono8', header, confidence_to_mono8(result.confidence),
                       'mono8')
        if wanted.groups and groups is not None:
            self._send('groups', header, groups, 'mono8')
        if wanted.points and cloud is not None:
            self.publishers['points'].publish(cloud)
        if wanted.camera_info and self.latest_info is not None:
            info = copy.copy(self.latest_info)
            info.header = header
            self.publishers['camera_info'].publish(info)

    def _send(self, name: str, header: Any, array: np.ndarray, encoding: str) -> None:
        self.publishers[name].publish(serialized_image(header, array, encoding))

    def destroy(self) -> None:
        for pub in self.publishers.values():
            self._node.destroy_publisher(pub)
        self._node.destroy_subscription(self.subscription)
        if self.info_subscription is not None:
            self._node.destroy_subscription(self.info_subscription)
        if self.depth is not None:
            self.depth.destroy()
