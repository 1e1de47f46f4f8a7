"""The allocator tuning of the node's process (bisenet_ros.allocator): a process taking 30 Hz
VGA frames over DDS stops faulting each frame's pages in again; the environment's own setting
wins. Real rclpy publisher and subscriber processes, with the large-image Fast DDS profile."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / 'config' / 'fastdds_large_images.xml'

# argv: role (pub or sub), tune (0/1). The subscriber takes raw frames as the node does and
# prints whether the allocator changed and its page faults per frame over 30 frames.
SCRIPT = '''
import resource, sys, time
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from bisenet_ros.allocator import keep_large_buffers
role, tune = sys.argv[1], sys.argv[2] == '1'
changed = keep_large_buffers() if tune else None
rclpy.init()
node = rclpy.create_node('allocator_probe_' + role)
if role == 'pub':
    msg = Image(height=480, width=640, encoding='bgr8', step=1920,
                data=np.full(480 * 640 * 3, 7, np.uint8).tobytes())
    pub = node.create_publisher(Image, '/allocator_probe', qos_profile_sensor_data)
    while True:
        pub.publish(msg)
        time.sleep(1 / 30)
got = []
node.create_subscription(Image, '/allocator_probe', lambda raw: got.append(
    resource.getrusage(resource.RUSAGE_SELF).ru_minflt), qos_profile_sensor_data, raw=True)
deadline = time.monotonic() + 60
while len(got) < 40 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
print(changed, (got[-1] - got[10]) / 29 if len(got) >= 40 else 'none')
'''


def _faults_per_frame(tune, **env):
    env = {**os.environ, 'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE), **env}
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
    pub = subprocess.Popen([sys.executable, '-c', SCRIPT, 'pub', '0'], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = subprocess.run([sys.executable, '-c', SCRIPT, 'sub', '1' if tune else '0'],
                             env=env, capture_output=True, text=True, timeout=90)
    finally:
        pub.kill()
        pub.wait()
    changed, faults = out.stdout.split()[-2:]
    assert faults != 'none', f'no frames arrived:\n{out.stderr[-2000:]}'
    return changed, float(faults)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc allocator: Linux only')
def test_frames_taken_over_dds_stop_faulting_their_pages_in_again():
    _, plain = _faults_per_frame(False)
    changed, tuned = _faults_per_frame(True)
    pages = 640 * 480 * 3 // 4096
    assert plain >= pages, plain  # every frame's buffer is mapped afresh
    assert changed == 'True' and tuned < pages / 10, (plain, tuned)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc allocator: Linux only')
def test_the_environment_setting_wins():
    changed, _ = _faults_per_frame(True, MALLOC_TRIM_THRESHOLD_='131072')
    assert changed == 'False'
