"""launch_testing: ``ros2 launch bisenet_ros segment.launch.py`` in a colcon install.

The launched node receives an image and publishes a mask of the image's size; after shutdown
(SIGINT from launch) it exits with code 0. Needs ``launch``, ``launch_ros`` and
``launch_testing`` (a ROS 2 install); skipped where launch_ros is not importable, as in the
pip-only venv. Run with ``colcon test`` or ``launch_test test/test_launch_segment.py``.
"""

import os
from pathlib import Path
import tempfile
import time
import unittest

import pytest

try:
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    import launch_ros  # noqa: F401
    import launch_testing
    import launch_testing.actions
    import launch_testing.asserts
except ImportError as exc:  # the pip-only venv: no launch, launch_ros, launch_testing
    pytest.skip(f'launch_ros / launch_testing not importable ({exc})', allow_module_level=True)

import numpy as np
import rclpy
from sensor_msgs.msg import Image

from bisenet_ros.ros.image_conversions import fill_image
from bisenet_ros.ros.node_harness import pattern_image, write_random_checkpoint

TOPIC = '/launch_test/image_raw'


@pytest.mark.launch_test
def generate_test_description():
    model = write_random_checkpoint(Path(tempfile.mkdtemp()) / 'random.pt')
    launch_file = os.path.join(get_package_share_directory('bisenet_ros'), 'launch',
                               'segment.launch.py')
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(launch_file),
        launch_arguments={'model': str(model), 'backend': 'torch',
                          'image_topics': TOPIC}.items())
    return LaunchDescription([segment, launch_testing.actions.ReadyToTest()]), {}


class TestSegmentLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('segment_launch_probe')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_mask_arrives_with_the_image_size_and_header(self):
        masks = []
        self.node.create_subscription(Image, '/segmentation/mask', masks.append, 10)
        pub = self.node.create_publisher(Image, TOPIC, 10)
        msg = fill_image(Image(), pattern_image(64, 96), 'bgr8')
        msg.header.frame_id = 'launch_camera'
        deadline = time.monotonic() + 120.0
        while not masks and time.monotonic() < deadline:
            msg.header.stamp = self.node.get_clock().now().to_msg()
            pub.publish(msg)
            rclpy.spin_once(self.node, timeout_sec=1.0)
        self.assertTrue(masks, 'no /segmentation/mask within 120 s')
        mask = masks[0]
        self.assertEqual((mask.height, mask.width, mask.encoding), (64, 96, 'mono8'))
        self.assertEqual(mask.header.frame_id, 'launch_camera')
        self.assertEqual(len(np.frombuffer(mask.data, np.uint8)), 64 * 96)


@launch_testing.post_shutdown_test()
class TestSegmentLaunchShutdown(unittest.TestCase):

    def test_exit_code_is_zero(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
