"""Shared test configuration.

* ROS environment defaults keep DDS traffic on this machine and logs in a temp dir; the
  artifact cache (``XDG_CACHE_HOME``) is a temp dir of the session.
* With ``BISENET_REQUIRE_ALL=1`` (set by ``.ci/run``) a skipped test fails, unless its reason
  names something CI cannot have (a GPU/TensorRT, rosbag2_py).
* ``colcon_install``: the package built by ``colcon build`` into a temp workspace, once.
"""

import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bisenet_ros_log_'))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', '77')
# The artifact cache (exports, int8 graphs, precision='auto' verdicts) of this test session: a
# temp folder shared by the session (and the nodes it starts), never the user's ~/.cache.
os.environ['XDG_CACHE_HOME'] = tempfile.mkdtemp(prefix='bisenet_ros_cache_')
os.environ.pop('BISENET_CACHE_DIR', None)
# precision='auto' decides by CPU features: tests see none (auto = fp32, the same numbers and
# load times on every host) unless they force a mask themselves (test_auto_precision.py) or the
# run sets BISENET_CPU_FLAGS, e.g. to this host's flags.
os.environ.setdefault('BISENET_CPU_FLAGS', '')

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / 'shared'
FIXTURE_DIR = SHARED / 'fixtures' / 'reference_bisenetv2'
CAMVID_DIR = SHARED / 'datasets' / 'camvid'

#: Skip reasons allowed on CI: things that cannot be installed on a CPU-only CI machine.
#: (launch_ros, ros2cli and vision_msgs come from ../shared/ros2-wheels: they must run.)
ALLOWED_SKIP_WORDS = ('tensorrt', 'gpu', 'cuda', 'rosbag2_py')


#: Thread-affinity tests need Linux and two CPUs.
needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, 'sched_getaffinity') or len(os.sched_getaffinity(0)) < 2,
    reason='thread affinity needs Linux and two CPUs')


def narrowed_threads() -> tuple:
    """``(threads of this process, {thread id: CPUs}`` of those whose affinity is narrower
    than the process's)``: a pinned inference thread waits whenever another process runs on
    its core."""
    allowed = os.sched_getaffinity(0)
    threads = [int(t) for t in os.listdir('/proc/self/task')]
    return len(threads), {t: os.sched_getaffinity(t) for t in threads
                          if os.sched_getaffinity(t) != allowed}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get('BISENET_REQUIRE_ALL') == '1':
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple)
                     else report.longrepr).lower()
        if not any(word in reason for word in ALLOWED_SKIP_WORDS):
            report.outcome = 'failed'
            report.longrepr = f'skipped on CI, where it must run: {reason}'


def require_ros2_cli() -> None:
    """Skip the calling test module where ``launch_ros`` or ``ros2cli`` is not importable."""
    try:
        import launch_ros  # noqa: F401
        import ros2cli  # noqa: F401
    except ImportError as exc:  # a venv without ../shared/ros2-wheels; CI has them
        pytest.skip(f'launch_ros / ros2cli not importable ({exc}); install '
                    '../shared/ros2-wheels or source a ROS 2 install', allow_module_level=True)


@pytest.fixture(scope='session')
def reference_fixture() -> Path:
    """The shared golden outputs of the reference BiSeNet V2 (skips when absent)."""
    if not (FIXTURE_DIR / 'city19_seed0.pth').is_file():
        pytest.skip(f'reference fixture not found at {FIXTURE_DIR}')
    return FIXTURE_DIR


@pytest.fixture(scope='session')
def camvid_dir() -> Path:
    """The shared CamVid dataset (skips when absent)."""
    if not (CAMVID_DIR / 'train').is_dir():
        pytest.skip(f'CamVid dataset not found at {CAMVID_DIR}')
    return CAMVID_DIR


@pytest.fixture(scope='session')
def colcon_install(tmp_path_factory) -> Path:
    """Install prefix of bisenet_ros built by ``colcon build`` (skips without colcon)."""
    colcon = Path(sys.executable).with_name('colcon')
    if not colcon.exists():
        colcon = shutil.which('colcon')
        if colcon is None:
            pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    work = tmp_path_factory.mktemp('colcon')
    result = subprocess.run(
        [str(colcon), '--log-base', str(work / 'log'), 'build', '--base-paths', str(REPO_ROOT),
         '--build-base', str(work / 'build'), '--install-base', str(work / 'install'),
         '--packages-select', 'bisenet_ros'],
        cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return work / 'install' / 'bisenet_ros'
