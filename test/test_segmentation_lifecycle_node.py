"""The managed node, driven by ``ros2 lifecycle set`` as a user (or Nav2's lifecycle manager)
does: launched with ``lifecycle:=On``, ``configure`` loads the model, ``activate`` subscribes
and publishes, ``deactivate`` stops, ``cleanup`` frees the model (the onnxruntime backend's
files go with it). Needs launch_ros and ros2cli like ``test_launch_segment.py``.
"""

import os
import time

import cv2
import pytest

from sensor_msgs.msg import CompressedImage, Image

from conftest import require_ros2_cli
from ros_harness import LaunchProcess, overlay_env, pattern_image, Probe, ros2, \
    write_random_checkpoint

#: colcon builds and `ros2` CLI start-ups take minutes: left out of `pytest -m "not slow"`
pytestmark = pytest.mark.slow

require_ros2_cli()

DOMAIN = 100 + os.getpid() % 10
TOPIC = '/lifecycle_test/image_raw'
MASK = '/segmentation/mask'
NODE = '/segmentation_node'


def _poll(predicate, timeout):
    """``predicate()`` until true or ``timeout`` s (it may run ros2 CLI commands)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)  # between ros2 CLI calls: their output is the only signal there is
    return predicate()


def _graphs(cache):
    return list(cache.rglob('*.onnx'))  # the exports, in the node's own artifact cache


def test_configure_activate_deactivate_cleanup(colcon_install, tmp_path):
    checkpoint = write_random_checkpoint(tmp_path / 'random.pt', seed=4)
    node_tmp = tmp_path / 'node_tmp'
    node_tmp.mkdir()
    cache = tmp_path / 'cache'
    env = dict(overlay_env(DOMAIN, colcon_install), TMPDIR=str(node_tmp),
               BISENET_CACHE_DIR=str(cache))
    launch = LaunchProcess(['bisenet_ros', 'segment.launch.py', 'lifecycle:=On',
                            'compressed:=yes', 'backend:=onnxruntime', f'model:={checkpoint}',
                            f'image_topics:={TOPIC}'], env)
    probe = Probe(DOMAIN)
    probe.subscribe(Image, MASK)

    def transition(name):
        out = ros2(['lifecycle', 'set', NODE, name], env)
        assert 'Transitioning successful' in out.stdout, out.stdout + out.stderr + launch.log()

    def state():
        out = ros2(['lifecycle', 'get', NODE], env)
        return out.stdout.split(' [')[0].strip()

    try:
        assert _poll(lambda: state() == 'unconfigured', 120), launch.log()
        assert probe.node.count_subscribers(f'{TOPIC}/compressed') == 0
        assert _graphs(cache) == []  # no model yet

        transition('configure')
        assert 'backend onnxruntime' in launch.log(), launch.log()  # the model is loaded...
        assert probe.node.count_subscribers(f'{TOPIC}/compressed') == 0  # ...but not serving
        out = ros2(['param', 'get', NODE, 'compressed'], env)
        assert 'Boolean value is: True' in out.stdout, out.stdout + out.stderr  # from 'yes'

        transition('activate')
        pub = probe.publisher(CompressedImage, f'{TOPIC}/compressed')
        assert probe.wait_for_subscribers(f'{TOPIC}/compressed', timeout=60)
        frame = CompressedImage(format='jpeg',
                                data=cv2.imencode('.jpg', pattern_image(48, 64))[1].tobytes())
        frame.header.frame_id = 'lifecycle_camera'

        def masks_after_publishing():
            frame.header.stamp = probe.node.get_clock().now().to_msg()
            pub.publish(frame)
            return probe.wait_for(lambda: bool(probe.received[MASK]), 1.0)
        assert _poll(masks_after_publishing, 120), launch.log()[-3000:]
        assert probe.received[MASK][0].header.frame_id == 'lifecycle_camera'
        assert len(_graphs(cache)) == 1  # the runtime's graph, made on the first frame

        transition('deactivate')
        assert probe.wait_for(lambda: probe.node.count_subscribers(f'{TOPIC}/compressed') == 0
                              and probe.node.count_publishers(MASK) == 0, 30)
        assert len(_graphs(cache)) == 1  # still configured: the model stays

        transition('cleanup')
        assert state() == 'unconfigured'
        assert len(_graphs(cache)) == 1  # the model is freed; its graph stays cached
    finally:
        probe.close()
        code = launch.stop()
    assert code == 0, launch.log()[-3000:]


def test_autostart_configures_and_activates_without_a_manager(tmp_path):
    """(was: a lifecycle node gave no output until something activated it)"""
    from bisenet_ros.ros.clients.node_process import NodeProcess
    checkpoint = write_random_checkpoint(tmp_path / 'random.pt', seed=5)
    domain = DOMAIN + 10
    node = NodeProcess({'model_path': str(checkpoint), 'backend': 'torch', 'threads': 1,
                        'autostart': True, 'image_topics': [TOPIC]}, domain,
                       extra_args=['--lifecycle'])
    probe = Probe(domain)
    try:
        probe.subscribe(Image, MASK)
        pub = probe.publisher(Image, TOPIC)
        msg = probe.image_msg(pattern_image(48, 64), 'bgr8')
        assert probe.reply_to(pub, msg, MASK, log=node.log).header.frame_id == msg.header.frame_id
        log = node.log()
        assert 'autostart: configuring' in log and 'autostart: activating' in log
    finally:
        probe.close()
        assert node.stop() == 0, node.log()[-2000:]


def test_autostart_with_a_missing_model_says_why_and_stays_unconfigured(tmp_path):
    from bisenet_ros.ros.clients.node_process import NodeProcess
    domain = DOMAIN + 11
    missing = tmp_path / 'missing.pt'
    node = NodeProcess({'model_path': str(missing), 'autostart': True,
                        'image_topics': [TOPIC]}, domain, extra_args=['--lifecycle'])
    probe = Probe(domain)
    try:
        assert probe.wait_for(lambda: 'autostart: configure failed' in node.log(), 120), \
            node.log()
        assert f"model file '{missing}' not found" in node.log()
        assert node.alive() and probe.node.count_subscribers(TOPIC) == 0
    finally:
        probe.close()
        assert node.stop() == 0, node.log()[-2000:]
