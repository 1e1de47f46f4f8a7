"""The tools leave nothing in the temp folder: each runs as a user runs it, with TMPDIR pointed
at an empty folder, which must be empty again afterwards (with and without ROS_LOG_DIR)."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

#: the demo starts the node and replays frames through it: minutes on a busy machine
pytestmark = pytest.mark.slow

#: Written by onnxruntime (1.2x+) itself on import, whatever the API is told (its telemetry SDK's
#: session file, 51 bytes, one fixed name, rewritten, never more): not ours to remove.
THIRD_PARTY = {'.ses'}
DEMO_IMAGE = next((REPO_ROOT / 'bisenet_ros' / 'data' / 'demo').glob('*.png'), None)


def _bisenet(args, tmp_path, ros_log_dir=None, timeout=600):
    """Run ``bisenet <args>`` in ``tmp_path/work`` with TMPDIR = an empty ``tmp_path/tmp``;
    the leftovers in TMPDIR afterwards."""
    temp = tmp_path / 'tmp'
    work = tmp_path / 'work'
    temp.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != 'ROS_LOG_DIR'}
    env.update(TMPDIR=str(temp), ROS_DOMAIN_ID=os.environ.get('ROS_DOMAIN_ID', '77'),
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + [
                   p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]),
               MPLCONFIGDIR=str(tmp_path / 'mpl'))
    if ros_log_dir is not None:
        env['ROS_LOG_DIR'] = str(ros_log_dir)
    out = subprocess.run([sys.executable, '-m', 'bisenet_ros.cli'] + [str(a) for a in args],
                         cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return sorted(str(p.relative_to(temp)) for p in temp.rglob('*')
                  if str(p.relative_to(temp)) not in THIRD_PARTY)


@pytest.mark.parametrize('ros_log_dir', [True, False], ids=['ROS_LOG_DIR', 'no_ROS_LOG_DIR'])
def test_demo_leaves_nothing_in_tmp(tmp_path, ros_log_dir):
    logs = tmp_path / 'ros_logs' if ros_log_dir else None
    left = _bisenet(['demo', '--frames', '2', '-o', 'demo'], tmp_path, logs)
    assert left == []
    if logs is not None:  # the node's ROS logs went where the user said
        assert any(logs.rglob('*.log')), sorted(logs.rglob('*'))


def test_offline_tools_leave_nothing_in_tmp(tmp_path):
    """make-bag -> eval-bag (offline) -> segment -> export (verified with onnxruntime)."""
    assert DEMO_IMAGE is not None
    steps = [
        ['make-bag', 'bag', '--dataset', 'demo', '--limit', '2'],
        ['eval-bag', 'bag', '--backend', 'torch', '-o', 'eval', '--no-plots', '--samples', '0'],
        ['segment', DEMO_IMAGE, '-o', 'seg', '--backend', 'torch'],
        ['export', '-o', 'model.onnx', '--input-size', '96x128'],
    ]
    for step in steps:
        assert _bisenet(step, tmp_path) == [], step
    assert (tmp_path / 'work' / 'model.onnx').is_file()
    assert Path(tmp_path / 'work' / 'seg').is_dir()
