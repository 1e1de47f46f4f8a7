"""The colcon install tree: what `ros2 run` and `ros2 launch` look for must be where they look."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

#: colcon builds and `ros2` CLI start-ups take minutes: left out of `pytest -m "not slow"`
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def install_prefix(colcon_install) -> Path:
    return colcon_install


def _site_packages(prefix: Path) -> Path:
    matches = list(prefix.glob('lib/python3*/site-packages'))
    assert len(matches) == 1, matches
    return matches[0]


def test_ament_index_marker_and_package_xml(install_prefix):
    assert (install_prefix / 'share/ament_index/resource_index/packages/bisenet_ros').is_file()
    assert (install_prefix / 'share/bisenet_ros/package.xml').read_text() == \
        (REPO_ROOT / 'package.xml').read_text()


def test_launch_and_config_files_installed(install_prefix):
    share = install_prefix / 'share/bisenet_ros'
    sources = [p.relative_to(REPO_ROOT) for p in REPO_ROOT.glob('launch/*.launch.py')]
    sources += [p.relative_to(REPO_ROOT) for p in REPO_ROOT.glob('config/**/*.yaml')]
    sources += [p.relative_to(REPO_ROOT) for p in REPO_ROOT.glob('config/**/*.xml')]
    assert Path('launch/segment.launch.py') in sources
    assert Path('config/labels/camvid.yaml') in sources
    for rel in sources:
        assert (share / rel).read_bytes() == (REPO_ROOT / rel).read_bytes(), rel


@pytest.mark.parametrize('executable', ['segmentation_node', 'segmentation_lifecycle_node',
                                        'bisenet'])
def test_executables_where_ros2_run_looks(install_prefix, executable):
    path = install_prefix / 'lib/bisenet_ros' / executable
    assert path.is_file() and os.access(path, os.X_OK)


def test_installed_package_finds_its_share_files(install_prefix, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(_site_packages(install_prefix)),
               AMENT_PREFIX_PATH=str(install_prefix))
    code = ('import bisenet_ros, bisenet_ros.resources as r;'
            'print(bisenet_ros.__file__);'
            "print(r.find_config_file('labels/camvid.yaml'))")
    out = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    module_file, config_file = out.stdout.split()[-2:]
    assert module_file.startswith(str(install_prefix))
    assert config_file == str(install_prefix / 'share/bisenet_ros/config/labels/camvid.yaml')


def test_installed_cli_runs(install_prefix, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(_site_packages(install_prefix)))
    out = subprocess.run([sys.executable, str(install_prefix / 'lib/bisenet_ros/bisenet'),
                          '--help'], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'usage: bisenet' in out.stdout


def test_default_model_is_packaged(install_prefix):
    source = REPO_ROOT / 'bisenet_ros/data/camvid_bisenetv2.pt'
    if not source.is_file():
        pytest.fail(f'default model {source} is missing from the source tree')
    installed = _site_packages(install_prefix) / 'bisenet_ros/data/camvid_bisenetv2.pt'
    assert installed.read_bytes() == source.read_bytes()
