"""``ros2 launch bisenet_ros segment.launch.py`` as a user runs it, with the real ``ros2`` CLI.

The package is built with colcon into a temp workspace (its ``share/`` on AMENT_PREFIX_PATH,
its Python packages first on PYTHONPATH, as ``source install/setup.bash`` does); ``ros2
launch`` runs in its own process group and is stopped with SIGINT to that group, as Ctrl-C
does. Against it: real frames in, masks with the input's stamp, frame_id and size out;
``ros2 param set`` changes the rate; bad values are refused with the reason; ``--show-args``
lists every argument; bad launch arguments are named. Needs ``launch_ros`` and ``ros2cli``
(a ROS 2 install, or ``../shared/ros2-wheels`` in the venv: ``bash scripts/setup_venv.sh``).
"""

import os
import re
import statistics
import time

import pytest

from sensor_msgs.msg import Image

from bisenet_ros.inference.backends.registry import BACKENDS
from bisenet_ros.ros import launch_args
from conftest import require_ros2_cli
from ros_harness import LaunchProcess, overlay_env, pattern_image, Probe, ros2, \
    write_random_checkpoint

#: colcon builds and `ros2` CLI start-ups take minutes: left out of `pytest -m "not slow"`
pytestmark = pytest.mark.slow

require_ros2_cli()

DOMAIN = 90 + os.getpid() % 10
TOPIC = '/launch_test/image_raw'
MASK = '/segmentation/mask'
NODE = '/segmentation_node'
ARGUMENTS = tuple(a.name for a in launch_args.ARGUMENTS)


@pytest.fixture(scope='module')
def env(colcon_install):
    return overlay_env(DOMAIN, colcon_install)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp('model') / 'random.pt', seed=2)


@pytest.fixture(scope='module')
def launched(env, checkpoint):
    """The node started by ``ros2 launch`` with a probe on the same domain."""
    launch = LaunchProcess(['bisenet_ros', 'segment.launch.py', f'model:={checkpoint}',
                            'backend:=torch', f'image_topics:={TOPIC}', 'max_rate:=10'], env)
    probe = Probe(DOMAIN)
    probe.subscribe(Image, MASK)
    try:
        pub = probe.publisher(Image, TOPIC)
        assert probe.wait_for_subscribers(TOPIC, timeout=120), launch.log()
        yield launch, probe, pub
    finally:
        probe.close()
        launch.stop()


def _stamp_s(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _median_mask_interval(probe, pub, masks, timeout=60.0):
    """Publish frames at 20 Hz until ``masks`` more masks came (at most ``timeout`` s); the
    median stamp gap (s) of those masks. Counting masks, not seconds, keeps the figure sound
    when the machine is busy and the node slow."""
    first = len(probe.received[MASK])
    deadline = time.monotonic() + timeout
    i = 0
    while len(probe.received[MASK]) - first < masks and time.monotonic() < deadline:
        pub.publish(probe.image_msg(pattern_image(48, 64, seed=i % 3), 'bgr8'))
        probe.wait_for(lambda: False, 0.05)
        i += 1
    stamps = [_stamp_s(m) for m in probe.received[MASK][first:first + masks]]
    assert len(stamps) == masks, f'{len(stamps)} of {masks} masks in {timeout} s'
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def test_show_args_lists_every_argument(env):
    out = ros2(['launch', 'bisenet_ros', 'segment.launch.py', '--show-args'], env)
    assert out.returncode == 0, out.stdout + out.stderr
    listed = re.findall(r"^    '(\w+)':", out.stdout, re.MULTILINE)
    assert sorted(listed) == sorted(ARGUMENTS)


def test_masks_have_the_input_stamp_frame_id_and_size(launched):
    launch, probe, pub = launched
    msg = probe.image_msg(pattern_image(40, 72), 'bgr8', frame_id='launch_camera')
    mask = probe.reply_to(pub, msg, MASK, timeout=120, log=launch.log)
    assert (mask.height, mask.width, mask.encoding) == (40, 72, 'mono8')
    assert mask.header.frame_id == 'launch_camera'
    assert len(mask.data) == 40 * 72


def test_ros2_param_set_changes_the_rate(launched, env):
    launch, probe, pub = launched
    got = ros2(['param', 'get', NODE, 'max_rate'], env)
    assert 'Double value is: 10.0' in got.stdout, got.stdout + got.stderr
    before = _median_mask_interval(probe, pub, 6)
    done = ros2(['param', 'set', NODE, 'max_rate', '0.5'], env)
    assert 'Set parameter successful' in done.stdout, done.stdout + done.stderr
    probe.wait_for(lambda: False, 0.5)  # a mask of a frame taken before the change may come
    after = _median_mask_interval(probe, pub, 4)
    # 0.5 Hz: frames start >= 2 s apart; input stamps are 50 ms apart. At 10 Hz the gaps are
    # 0.1 s on a quiet machine, and stay well under 2 s on a busy one.
    assert after >= 1.9 and before < after, (before, after)


def test_ros2_param_set_refuses_bad_values_with_the_reason(launched, env):
    launch, probe, pub = launched
    out = ros2(['param', 'set', NODE, 'backend', 'trt'], env)
    said = out.stdout + out.stderr
    assert 'Setting parameter failed' in said, said
    assert f"backend: must be one of {', '.join(BACKENDS)}, got 'trt'" in said, said
    out = ros2(['param', 'set', NODE, 'max_rate', '-3.0'], env)
    assert 'Setting parameter failed' in out.stdout + out.stderr, out.stdout + out.stderr
    out = ros2(['param', 'get', NODE, 'backend'], env)
    assert 'String value is: torch' in out.stdout, out.stdout + out.stderr
    assert launch.proc.poll() is None, launch.log()


@pytest.mark.parametrize('argument, accepted', [
    ('max_rate:=abc', "max_rate:='abc' is not a number; expected a number in 0.0..1000.0"),
    ('compressed:=maybe', "compressed:='maybe' is not a boolean; expected one of true/false"),
    ('backend:=trt', "backend:='trt' is not valid for parameter backend; expected one of"),
])
def test_bad_launch_arguments_are_named_with_the_accepted_values(env, argument, accepted):
    out = ros2(['launch', 'bisenet_ros', 'segment.launch.py', argument], env, timeout=120)
    assert out.returncode != 0
    assert accepted in out.stdout + out.stderr, out.stdout + out.stderr


def test_sigint_to_the_launch_group_stops_everything_cleanly(launched):
    """Ctrl-C: SIGINT from the terminal and a second one from launch reach the node."""
    launch, probe, pub = launched
    code = launch.stop()
    log = launch.log()
    assert code == 0, log[-3000:]
    assert 'process has died' not in log and 'Traceback' not in log, log[-3000:]
    assert re.search(r'process has finished cleanly', log), log[-3000:]


def test_nav2_launch_file_switches_on_what_the_layer_reads(env, checkpoint):
    launch = LaunchProcess(['bisenet_ros', 'segment_nav2.launch.py', f'model:={checkpoint}',
                            'backend:=torch', 'image_topic:=/nav2_test/color/image_raw',
                            'depth_topic:=/nav2_test/depth/image_raw'], env)
    try:
        out = ros2(['param', 'get', NODE, 'depth_topic'], env, timeout=120)
        assert 'String value is: /nav2_test/depth/image_raw' in out.stdout, \
            out.stdout + out.stderr + launch.log()
        out = ros2(['param', 'get', NODE, 'image_topics'], env)
        assert "String values are: ['/nav2_test/color/image_raw']" in out.stdout, out.stdout
        out = ros2(['param', 'get', NODE, 'publish_confidence_mono8'], env)
        assert 'Boolean value is: True' in out.stdout, out.stdout + out.stderr
        out = ros2(['topic', 'list', '-t'], env)
        for line in ('/segmentation/points [sensor_msgs/msg/PointCloud2]',
                     '/segmentation/confidence_mono8 [sensor_msgs/msg/Image]',
                     '/segmentation/label_info [vision_msgs/msg/LabelInfo]',
                     '/nav2_test/depth/camera_info [sensor_msgs/msg/CameraInfo]'):
            assert line in out.stdout, out.stdout
    finally:
        assert launch.stop() == 0, launch.log()[-3000:]
