"""``segmentation_node``: BiSeNet V2 semantic segmentation of camera images (a thin rclpy layer).

Subscribes to ``image_topics`` (sensor_msgs/Image, or CompressedImage on ``<topic>/compressed``),
segments the newest frame of every camera in a two-stage worker (:mod:`.worker`: one thread
infers while the other publishes the previous result; cameras of one size share a batched
call, each call's outputs go out as soon as it returns, worker time is shared fairly between
cameras, see :mod:`.frame_slots`), and publishes
``<output_prefix>/{mask, color_mask, overlay, confidence, confidence_mono8, camera_info}``
(one camera) or ``<output_prefix>/<camera>/...`` (several), with ``depth_topic`` the organized
semantic cloud ``<output_prefix>/points``, the class metadata on the latched
``<output_prefix>/class_info`` (JSON) and ``<output_prefix>/label_info`` (vision_msgs/LabelInfo,
when importable), and the node's health on ``/diagnostics``.

Run: ``ros2 run bisenet_ros segmentation_node --ros-args -p model_path:=/path/model.pt`` or
``python -m bisenet_ros.ros.segmentation_node --ros-args ...``. The managed (lifecycle) node:
``ros2 run bisenet_ros segmentation_lifecycle_node`` (or ``python -m ... --lifecycle``).
"""

from __future__ import annotations

import sys
from typing import List, Optional

from .node import SegmentationLifecycleNode, SegmentationNode
from .process import run_main


def main(args: Optional[List[str]] = None) -> None:
    """Entry point of ``segmentation_node`` (console script, ``ros2 run``, ``python -m``);
    never returns. The process plumbing is :mod:`bisenet_ros.ros.process`."""
    run_main(SegmentationNode, args)


def lifecycle_main(args: Optional[List[str]] = None) -> None:
    """Entry point of ``segmentation_lifecycle_node`` (the managed node); never returns."""
    run_main(SegmentationLifecycleNode, args)


if __name__ == '__main__':
    if '--lifecycle' in sys.argv[1:]:  # python -m bisenet_ros.ros.segmentation_node --lifecycle
        sys.argv.remove('--lifecycle')
        lifecycle_main()
    else:
        main()
