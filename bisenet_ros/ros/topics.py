"""Topic names the node derives from its inputs: each camera's output namespace and the
camera_info topic beside an image topic. Plain Python (no rclpy)."""

from __future__ import annotations

from typing import List


def camera_names(topics: List[str]) -> List[str]:
    """Output sub-namespace of each input topic: its parent namespace, made unique.

    ``/cam_left/image_raw`` -> ``cam_left``; ``/robot/front/image`` -> ``robot/front``;
    a topic without a parent becomes ``camera<i>``.
    """
    names: List[str] = []
    for i, topic in enumerate(topics):
        parent = topic.lstrip('~').strip('/').rpartition('/')[0]
        name = parent or f'camera{i}'
        while name in names:
            name = f'{name}_{i}'
        names.append(name)
    return names


def camera_info_topic(image_topic: str) -> str:
    """``<namespace of the image topic>/camera_info`` (the image_transport convention)."""
    parent = image_topic.rpartition('/')[0]
    return f'{parent}/camera_info' if parent else 'camera_info'
