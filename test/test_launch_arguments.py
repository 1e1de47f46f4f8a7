"""Every argument ``--show-args`` lists, in both launch files, reaches the node.

One ``ros2 launch`` per file with every argument set to a value other than its default, then the
node is asked: its parameters (``get_parameters`` service), its namespace and kind (the lifecycle
``get_state`` service), its log level (debug lines in the launch output) and its environment (the
Fast DDS profile variable, read from ``/proc/<pid>/environ``). The node is the lifecycle one,
left unconfigured, so no model is loaded. Needs launch_ros and ros2cli like
``test_launch_segment.py``.
"""

import os
from pathlib import Path
import re
import time

import psutil
import pytest
import yaml

from bisenet_ros.ros import launch_args
from bisenet_ros.ros.params import SPEC_BY_NAME
from conftest import REPO_ROOT, require_ros2_cli
from ros_harness import LaunchProcess, overlay_env, Probe, ros2, write_random_checkpoint

#: colcon builds and `ros2` CLI start-ups take minutes: left out of `pytest -m "not slow"`
pytestmark = pytest.mark.slow

require_ros2_cli()

DOMAIN = 110 + os.getpid() % 10
NAMESPACE = 'launch_args_ns'
NODE = f'/{NAMESPACE}/segmentation_node'
PROFILE = 'FASTDDS_DEFAULT_PROFILES_FILE'


@pytest.fixture(scope='module')
def env(colcon_install):
    env = overlay_env(DOMAIN, colcon_install)
    env.pop(PROFILE, None)
    return env


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A checkpoint and a params file that differs from the packaged one in overlay_alpha."""
    folder = tmp_path_factory.mktemp('launch_args')
    model = write_random_checkpoint(folder / 'random.pt', seed=3)
    data = yaml.safe_load((REPO_ROOT / 'config' / 'segmentation.yaml').read_text())
    (body,) = data.values()
    body['ros__parameters']['overlay_alpha'] = 0.25
    params_file = folder / 'params.yaml'
    params_file.write_text(yaml.safe_dump(data))
    return model, params_file


def _non_default(model, params_file, nav2):
    """launch argument -> text, each different from that file's default, and parameter ->
    the value the node must then hold."""
    given = {'image_topics': '/la/cam/image_raw', 'model': str(model), 'backend': 'torch',
             'precision': 'fp16', 'device': 'auto', 'params_file': str(params_file),
             'namespace': NAMESPACE, 'max_rate': '3.5', 'compressed': 'true',
             'depth_topic': '/la/depth/image_raw',
             'confidence_mono8': 'false' if nav2 else 'true',
             'lifecycle': 'true', 'autostart': 'true',
             'use_fastdds_profile': 'true' if nav2 else 'false', 'log_level': 'debug'}
    expected = {'image_topics': ['/la/cam/image_raw'], 'model_path': str(model),
                'backend': 'torch', 'precision': 'fp16', 'device': 'auto', 'max_rate': 3.5,
                'compressed': True, 'depth_topic': '/la/depth/image_raw',
                'publish_confidence_mono8': not nav2, 'autostart': True,
                'overlay_alpha': 0.25}
    return given, expected


def _listed(env, launch_file):
    out = ros2(['launch', 'bisenet_ros', launch_file, '--show-args'], env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.findall(r"^    '(\w+)':", out.stdout, re.MULTILINE)


def _node_process(launch, timeout=120.0):
    """The lifecycle node process under ``launch`` (its environment is readable)."""
    parent = psutil.Process(launch.proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in parent.children(recursive=True):
            try:
                if any('segmentation_lifecycle_node' in part for part in child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError('no segmentation_lifecycle_node process\n' + launch.log()[-3000:])


@pytest.mark.parametrize('launch_file', ['segment.launch.py', 'segment_nav2.launch.py'])
def test_every_listed_argument_reaches_the_node(env, files, launch_file):
    nav2 = 'nav2' in launch_file
    listed = _listed(env, launch_file)
    names = [a.name for a in launch_args.ARGUMENTS]
    assert listed == names + (['image_topic'] if nav2 else []), listed
    given, expected = _non_default(*files, nav2)
    defaults = dict({a.name: a.default for a in launch_args.ARGUMENTS},
                    **(launch_args.NAV2_DEFAULTS if nav2 else {}))
    assert set(given) == set(names)
    same = {'params_file'} | ({'use_fastdds_profile'} if nav2 else set())  # the other path
    for name, text in given.items():
        assert text != defaults[name] or name in same, name
    launch = LaunchProcess(['bisenet_ros', launch_file]
                           + [f'{name}:={text}' for name, text in given.items()], env)
    probe = Probe(DOMAIN)
    try:
        node_proc = _node_process(launch)
        got = probe.get_parameters(list(expected), node=NODE, timeout=120)
        assert got == expected, launch.log()[-3000:]
        services = dict(probe.node.get_service_names_and_types())
        assert f'{NODE}/get_state' in services, (sorted(services), launch.log()[-3000:])
        assert re.search(r'\[DEBUG\]', launch.log()), launch.log()[-3000:]
        environ = node_proc.environ()
        if nav2:
            assert environ.get(PROFILE, '').endswith('config/fastdds_large_images.xml')
            assert Path(environ[PROFILE]).is_file()
        else:
            assert PROFILE not in environ, environ.get(PROFILE)
    finally:
        probe.close()
        assert launch.stop() == 0, launch.log()[-3000:]


def test_nav2_old_image_topic_argument_still_wins(env, files):
    model, _ = files
    launch = LaunchProcess(['bisenet_ros', 'segment_nav2.launch.py', f'model:={model}',
                            'lifecycle:=true', 'image_topic:=/old/color/image_raw',
                            'image_topics:=/new/color/image_raw'], env)
    probe = Probe(DOMAIN)
    try:
        got = probe.get_parameters(['image_topics', 'depth_topic', 'publish_confidence_mono8'],
                                   timeout=120)
        assert got == {'image_topics': ['/old/color/image_raw'],
                       'depth_topic': launch_args.NAV2_DEFAULTS['depth_topic'],
                       'publish_confidence_mono8': True}, launch.log()[-3000:]
    finally:
        probe.close()
        assert launch.stop() == 0, launch.log()[-3000:]


def test_argument_descriptions_name_the_registry_choices():
    by_name = {a.name: a for a in launch_args.ARGUMENTS}
    for arg, param in launch_args.PARAM_ARGS.items():
        assert param in SPEC_BY_NAME, (arg, param)
        for choice in SPEC_BY_NAME[param].choices or ():
            assert choice in by_name[arg].description, (arg, choice)
