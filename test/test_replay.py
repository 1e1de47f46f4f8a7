"""ros/clients/replay.py against a stand-in node over real DDS: a mask its callback cannot read
ends the replay with that error at once (it used to be swallowed and show up as a timeout)."""

import os

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from bisenet_ros.bags.messages import image_cdr, MessageError
from bisenet_ros.evaluation.live import OutgoingFrame
from bisenet_ros.ros.clients.replay import replay
from bisenet_ros.ros.clients.spin_thread import SpinThread

DOMAIN = 120 + os.getpid() % 10
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def test_a_mask_the_replay_cannot_read_raises_its_error_not_a_timeout():
    with SpinThread('stand_in_node', DOMAIN) as node:
        masks = node.node.create_publisher(Image, '/replay_test/mask', RELIABLE)
        # Answers every image with 4 bytes: too short to hold a header.
        node.node.create_subscription(Image, '/replay_test/image', lambda raw: masks.publish(
            b'\x00\x01\x00\x00'), RELIABLE, raw=True)
        frame = OutgoingFrame(1_700_000_000 * 10**9, 0.0,
                              image_cdr(np.zeros((4, 4, 3), np.uint8), 1_700_000_000 * 10**9,
                                        'camera'))
        with pytest.raises(MessageError, match='4 bytes is too short'):
            replay([frame], '/replay_test/image', '/replay_test/mask', connect_timeout_s=60,
                   warmup_timeout_s=600, domain_id=DOMAIN)
        node.check()  # the stand-in itself is fine
