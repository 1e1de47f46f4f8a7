"""The latched class metadata topics, republished whenever what they say changes: for the class
mask ``<prefix>/class_info`` (JSON) and ``<prefix>/label_info`` (vision_msgs/LabelInfo, when
importable), for the group mask (``class_groups``) ``<prefix>/groups_info`` and
``<prefix>/groups_label_info``.

The metadata itself is :func:`~bisenet_ros.ros.model_holder.class_metadata` of the serving model,
or :meth:`~bisenet_ros.class_groups.ClassGroups.metadata` of its groups.

What they say is a pure function of the serving model and two parameters (the confidence
threshold, the label set), so :meth:`MetadataPublisher.update` publishes only when that value
differs from the last one published: a model swap, a new label set or a new threshold reach
late-joining subscribers at once, and nothing is republished for a change that alters none of
it.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional, Tuple

from rclpy.node import Node
from std_msgs.msg import String

from .camera_io import LATCHED_QOS


class MetadataPublisher:
    """The latched metadata publishers of one node (created on activate, destroyed on
    deactivate); thread-safe: the loader thread publishes after a swap, the executor after a
    parameter change."""

    def __init__(self, node: Node, json_topic: str, label_info_topic: str) -> None:
        self._node = node
        self._lock = threading.Lock()
        self._last: Optional[Tuple[str, float]] = None
        self._pubs: List[Tuple[str, Any]] = [
            ('json', node.create_publisher(String, json_topic, LATCHED_QOS))]
        try:
            from vision_msgs.msg import LabelInfo
            self._pubs.append(('label_info', node.create_publisher(
                LabelInfo, label_info_topic, LATCHED_QOS)))
        except ImportError:
            pass

    @property
    def topics(self) -> List[str]:
        return [pub.topic_name for _, pub in self._pubs]

    def update(self, metadata: Optional[Dict[str, Any]], threshold: float) -> bool:
        """Publish ``metadata`` (a :func:`~.model_holder.class_metadata` or
        ``ClassGroups.metadata()`` dict, whose ``class_map`` [id, name] pairs, else its
        ``class_names`` in id order, make the LabelInfo) with the confidence ``threshold``
        unless exactly that was published last; ``None`` (no model, no groups) publishes
        nothing. Returns whether it published."""
        if metadata is None:
            return False
        key = (json.dumps(metadata, sort_keys=True), float(threshold))
        with self._lock:
            if key == self._last or not self._pubs:
                return False
            self._last = key
            for kind, pub in self._pubs:
                pub.publish(String(data=json.dumps(dict(metadata, threshold=float(threshold))))
                            if kind == 'json' else self._label_info(metadata, threshold))
        return True

    def _label_info(self, metadata: Dict[str, Any], threshold: float) -> Any:
        from vision_msgs.msg import LabelInfo, VisionClass
        msg = LabelInfo()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        pairs = metadata.get('class_map') or list(enumerate(metadata['class_names']))
        msg.class_map = [VisionClass(class_id=int(i), class_name=str(name))
                         for i, name in pairs]
        msg.threshold = float(threshold)
        return msg

    def destroy(self) -> None:
        with self._lock:
            pubs, self._pubs = self._pubs, []
        for _, pub in pubs:
            self._node.destroy_publisher(pub)
