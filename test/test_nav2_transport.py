"""Clouds per mask with the camera in its own process, as on a robot (docs/nav2.md).

The node runs as ``segment_nav2.launch.py`` starts it (with config/fastdds_large_images.xml);
``test/fake_camera.py`` publishes colour, registered depth and camera_info back to back at 5 Hz
with SensorData QoS. What decides whether depth arrives is the *camera's* Fast DDS shared-memory
segment (512 KiB by default): every message of one frame's burst must fit in it at once, or
the later ones recycle the earlier ones' buffers before the node has read them, whatever the
node's own profile or queue depth. Measured on a 2-core machine, 50 frames at 5 Hz of 360x480
(colour 518 kB + depth 346 kB), the subscriber with the node's profile: camera without a profile
18-31 depth images and 41-47 camera_infos of 50; with the profile 50 of 50.

* a camera without a profile whose burst fits (240x320: 230 kB + 154 kB) loses nothing;
* a camera that loads the profile the docs name (FASTDDS_DEFAULT_PROFILES_FILE) loses nothing at
  CamVid's 360x480.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, PointCloud2

from bisenet_ros.ros.clients.node_process import NodeProcess
from conftest import REPO_ROOT
from ros_harness import pattern_image, Probe, stamp_ns, write_random_checkpoint

try:
    import vision_msgs  # noqa: F401 (the node's LabelInfo)
except ImportError as exc:  # a venv without ../shared/ros2-wheels (CI has them)
    pytest.skip(f'vision_msgs not importable ({exc}); install ../shared/ros2-wheels',
                allow_module_level=True)

#: a node, a camera process and 40 frames per case: minutes on a busy machine
pytestmark = pytest.mark.slow

DOMAIN = 150 + os.getpid() % 10
PROFILE = REPO_ROOT / 'config' / 'fastdds_large_images.xml'
CAMERA = Path(__file__).with_name('fake_camera.py')
COLOUR, DEPTH = '/camera/color/image_raw', '/camera/aligned_depth_to_color/image_raw'
MASK, POINTS = '/segmentation/mask', '/segmentation/points'
FRAMES, RATE = 40, 5.0


@pytest.fixture(scope='module')
def running(tmp_path_factory):
    """The node with the Nav2 launch file's inputs and profile, and a probe on its outputs."""
    model = write_random_checkpoint(tmp_path_factory.mktemp('model') / 'nav2.pt', seed=4)
    node = NodeProcess({'backend': 'torch', 'threads': 1, 'model_path': str(model),
                        'image_topics': [COLOUR], 'depth_topic': DEPTH,
                        'input_size': [96, 128], 'publish_color_mask': False,
                        'publish_overlay': False, 'publish_confidence_mono8': True,
                        'depth_wait': 0.5, 'depth_stamp_tolerance': 0.0},
                       DOMAIN, fastdds_profile=str(PROFILE))
    probe = Probe(DOMAIN)
    try:
        probe.subscribe(Image, MASK, qos=qos_profile_sensor_data)
        probe.subscribe(PointCloud2, POINTS, qos=qos_profile_sensor_data)
        warm_up = probe.publisher(Image, COLOUR)
        assert probe.wait_for_subscribers(COLOUR, timeout=120), node.log()[-3000:]
        probe.reply_to(warm_up, probe.image_msg(pattern_image(48, 64), 'bgr8', stamp_ns=1),
                       MASK, timeout=180, log=node.log)  # the model is loaded
        yield node, probe
    finally:
        probe.close()
        assert node.stop(signal.SIGINT) == 0, node.log()[-3000:]


def _clouds_per_mask(node, probe, height, width, first, camera_env):
    """Run the camera process for FRAMES frames; (masks, clouds) of its stamps."""
    env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
    env.update(camera_env, ROS_DOMAIN_ID=str(DOMAIN),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(CAMERA.parent)]))
    out = subprocess.run([sys.executable, str(CAMERA), str(DOMAIN), str(RATE), str(FRAMES),
                          str(height), str(width), str(first)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and f'sent {FRAMES}' in out.stdout, out.stdout + out.stderr
    stamps = {first + i * 100_000_000 for i in range(FRAMES)}

    def ours(topic):
        return {stamp_ns(m) for m in probe.received[topic]} & stamps
    # the last frames' clouds: each comes within depth_wait (0.5 s) of its mask
    probe.wait_for(lambda: ours(MASK) <= ours(POINTS), 5.0)
    masks, clouds = ours(MASK), ours(POINTS)
    assert len(masks) >= 5, f'{len(masks)} masks of {FRAMES} frames\n' + node.log()[-3000:]
    return len(masks), len(clouds & masks)


def test_camera_without_profile_loses_no_depth_when_its_burst_fits(running):
    node, probe = running
    masks, clouds = _clouds_per_mask(node, probe, 240, 320, 10**18, {})
    assert clouds >= 0.9 * masks, (masks, clouds, node.log()[-3000:])


def test_camera_with_the_documented_profile_loses_no_depth_at_360x480(running):
    node, probe = running
    masks, clouds = _clouds_per_mask(node, probe, 360, 480, 2 * 10**18,
                                     {'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE)})
    assert clouds >= 0.9 * masks, (masks, clouds, node.log()[-3000:])
