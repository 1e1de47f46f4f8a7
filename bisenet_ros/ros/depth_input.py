"""The registered depth image and its camera_info, kept by stamp for the semantic cloud.

A thin rclpy layer: two SensorData subscriptions fill :class:`StampBuffer` s; :meth:`cloud`
waits (bounded) for the pair matching a frame's stamp and builds the ``PointCloud2`` with
:func:`point_cloud.semantic_cloud`.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from ..image_conversions import image_to_array
from .topics import camera_info_topic
from .input_health import InputCounts, missing_cloud_cause
from .point_cloud import check_camera_info, point_fields, semantic_cloud
from .stamp_buffer import StampBuffer


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class DepthInput:
    """Subscriptions to ``depth_topic`` and ``<its namespace>/camera_info``."""

    def __init__(self, node: Node, depth_topic: str, callback_group: Any) -> None:
        self.topic = depth_topic
        self.info_topic = camera_info_topic(depth_topic)
        self._node = node
        self._depth = StampBuffer()
        self._info = StampBuffer()
        #: Messages of each input received and clouds made (the colour count is the node's).
        self.counts = InputCounts()
        self.subscriptions = [
            node.create_subscription(Image, depth_topic, self._on_depth,
                                     qos_profile_sensor_data, callback_group=callback_group),
            node.create_subscription(CameraInfo, self.info_topic, self._on_info,
                                     qos_profile_sensor_data, callback_group=callback_group)]

    def _on_depth(self, msg: Image) -> None:
        self.counts.add('depth')
        self._depth.put(stamp_to_ns(msg.header.stamp), msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self.counts.add('camera_info')
        self._info.put(stamp_to_ns(msg.header.stamp), msg)

    def matching(self, stamp_ns: int, tolerance: float,
                 wait: float) -> Tuple[Optional[Any], Optional[Any]]:
        """(depth Image, CameraInfo) stamped within ``tolerance`` s, waiting up to ``wait`` s."""
        tol = int(tolerance * 1e9)
        depth = self._depth.wait_for(stamp_ns, tol, wait)
        info = self._info.wait_for(stamp_ns, tol, wait if depth is not None else 0.0)
        return depth, info

    def cloud(self, header: Any, labels: np.ndarray, confidence: Optional[np.ndarray],
              tolerance: float, wait: float) -> PointCloud2:
        """The organized cloud of the frame with ``header`` (its stamp and frame_id).

        Raises LookupError when no depth/camera_info of that stamp arrived in time,
        ``point_cloud.BadCameraInfo`` (a ``DepthMismatch``) for an implausible camera_info, and
        ``point_cloud.DepthMismatch`` / ``ConversionError`` when they do not fit the mask.
        """
        stamp = stamp_to_ns(header.stamp)
        depth, info = self.matching(stamp, tolerance, wait)
        if depth is None or info is None:
            missing = ' and '.join(name for name, msg in (('depth', depth), ('camera_info', info))
                                   if msg is None)
            gaps = [None if gap is None else gap / 1e9 for gap in
                    (self._depth.nearest_gap(stamp), self._info.nearest_gap(stamp))]
            cause = missing_cloud_cause(self.counts, gaps[0], gaps[1], tolerance, wait)
            raise LookupError(f'no {missing} within {tolerance} s of the frame stamp after '
                              f'waiting {wait} s ({self.topic}, {self.info_topic}); likely '
                              f'{cause}')
        pixels = image_to_array(depth)
        check_camera_info(info, pixels.shape)  # BadCameraInfo: no cloud, a counted reason
        cloud = semantic_cloud(pixels, depth.encoding, info.k, labels, confidence)
        msg = PointCloud2()
        msg.header = header
        msg.height, msg.width = cloud.shape
        msg.fields = [PointField(name=name, offset=offset, datatype=kind, count=1)
                      for name, offset, kind in point_fields(confidence is not None)]
        msg.is_bigendian = False
        msg.point_step = cloud.dtype.itemsize
        msg.row_step = msg.point_step * msg.width
        msg.is_dense = False  # invalid depth gives NaN points
        msg.data = cloud.tobytes()
        return msg

    def destroy(self) -> None:
        for sub in self.subscriptions:
            self._node.destroy_subscription(sub)
        self._depth.clear()
        self._info.clear()
