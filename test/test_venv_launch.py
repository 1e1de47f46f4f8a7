"""The README's venv is an ament prefix: `ros2 launch|run|pkg bisenet_ros` with no colcon build.

Exactly what a user does after ``bash scripts/setup_venv.sh``: a new ``bash``, nothing set but
``source .venv/bin/activate`` (AMENT_PREFIX_PATH and PYTHONPATH unset), then the quick start's
``ros2 launch bisenet_ros segment.launch.py`` (the packaged model, /camera/image_raw) and
``ros2 run bisenet_ros segmentation_node``; a probe on the test's private domain gets a mask.
Runs in the venv running the tests (``sys.prefix``), which must come from the setup script.
"""

import os
from pathlib import Path
import shlex
import subprocess
import sys

import pytest

from sensor_msgs.msg import Image

from conftest import REPO_ROOT, require_ros2_cli
from ros_harness import LaunchProcess, pattern_image, Probe

#: `ros2` CLI start-ups and node starts take minutes on a busy machine
pytestmark = pytest.mark.slow

require_ros2_cli()

DOMAIN = 130 + os.getpid() % 10
PREFIX = Path(sys.prefix)
ACTIVATE = PREFIX / 'bin' / 'activate'
MASK = '/segmentation/mask'


@pytest.fixture(scope='module')
def user_env():
    """The environment of a new terminal: no ament or Python path, this test's domain."""
    if sys.prefix == sys.base_prefix:
        pytest.skip('not running in a venv: the colcon path is test_package_install.py')
    marker = PREFIX / 'share/ament_index/resource_index/packages/bisenet_ros'
    assert marker.is_file(), (f'{PREFIX} is not set up as an ament prefix ({marker} missing): '
                              'run `bash scripts/setup_venv.sh`')
    env = {k: v for k, v in os.environ.items()
           if k not in ('AMENT_PREFIX_PATH', 'PYTHONPATH', 'VIRTUAL_ENV',
                        'FASTDDS_DEFAULT_PROFILES_FILE', 'CMAKE_PREFIX_PATH')}
    env['PATH'] = os.pathsep.join(p for p in env.get('PATH', '').split(os.pathsep)
                                  if not p.startswith(str(PREFIX)))
    env['ROS_DOMAIN_ID'] = str(DOMAIN)
    return env


def _in_venv(line: str) -> list:
    """``bash -c 'source <venv>/bin/activate && exec <line>'``."""
    return ['bash', '-c', f'source {shlex.quote(str(ACTIVATE))} && exec {line}']


def _run(line: str, env, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(_in_venv(line), env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_activate_exports_the_prefix_once(user_env):
    out = subprocess.run(['bash', '-c', f'source {shlex.quote(str(ACTIVATE))} && '
                          f'source {shlex.quote(str(ACTIVATE))} && echo "$AMENT_PREFIX_PATH"'],
                         env=user_env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == str(PREFIX), out.stdout + out.stderr


def test_ros2_pkg_finds_the_package_and_its_executables(user_env):
    out = _run('ros2 pkg prefix bisenet_ros', user_env)
    assert out.returncode == 0 and out.stdout.strip() == str(PREFIX), out.stdout + out.stderr
    out = _run('ros2 pkg executables bisenet_ros', user_env)
    assert out.returncode == 0, out.stdout + out.stderr
    for exe in ('segmentation_node', 'segmentation_lifecycle_node', 'bisenet'):
        assert f'bisenet_ros {exe}' in out.stdout, out.stdout


def test_share_files_are_the_checkouts(user_env):
    """Launch and config files edited in the checkout are the ones `ros2 launch` runs."""
    share = PREFIX / 'share/bisenet_ros'
    source = Path(os.path.realpath(share / 'package.xml')).parent
    assert (source / 'setup.py').is_file(), source
    for path in [Path('package.xml'), *(p.relative_to(source) for p in
                                        source.glob('launch/*.launch.py')),
                 *(p.relative_to(source) for p in source.glob('config/**/*.yaml'))]:
        assert (share / path).is_file() and os.path.samefile(share / path, source / path), path
    if source.resolve() == REPO_ROOT.resolve():
        assert sorted(p.name for p in (share / 'launch').iterdir()) == \
            sorted(p.name for p in (REPO_ROOT / 'launch').glob('*.launch.py'))


def _mask_from(command, env):
    """Start ``command`` (in its own process group), send frames to /camera/image_raw until a
    mask comes back; the mask and the process's log."""
    launch = LaunchProcess([], env, command=command)
    probe = Probe(DOMAIN)
    try:
        probe.subscribe(Image, MASK)
        pub = probe.publisher(Image, '/camera/image_raw')
        assert probe.wait_for_subscribers('/camera/image_raw', timeout=180), launch.log()
        msg = probe.image_msg(pattern_image(48, 64), 'bgr8', frame_id='venv_camera')
        mask = probe.reply_to(pub, msg, MASK, timeout=180, log=launch.log)
    finally:
        probe.close()
        code = launch.stop()
    assert code == 0, launch.log()[-3000:]
    return mask, launch.log()


def test_quick_start_launch_from_a_new_shell(user_env):
    mask, log = _mask_from(_in_venv('ros2 launch bisenet_ros segment.launch.py'), user_env)
    assert (mask.height, mask.width, mask.encoding) == (48, 64, 'mono8'), log[-3000:]
    assert mask.header.frame_id == 'venv_camera'


def test_ros2_run_from_a_new_shell(user_env):
    mask, log = _mask_from(_in_venv('ros2 run bisenet_ros segmentation_node --ros-args '
                                    '-p backend:=torch -p publish_overlay:=false'), user_env)
    assert (mask.height, mask.width) == (48, 64), log[-3000:]
