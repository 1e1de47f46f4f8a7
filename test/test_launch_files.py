"""The launch file and config files without a ROS install: syntax, arguments, referenced files,
install paths, and that the parameter YAML holds only valid node parameters.

``launch``/``launch_ros`` cannot be installed from PyPI, so one test runs the launch file's own
code against small stand-ins that record what it builds (see ``test_launch_segment.py`` for the
real `ros2 launch` runs with the ros2 CLI).
"""

from pathlib import Path
import re
import sys
import types
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

from bisenet_ros.ros.launch_args import ARGUMENTS
from bisenet_ros.ros.params import SPEC_BY_NAME, validate

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / 'launch' / 'segment.launch.py'
CONFIG = ROOT / 'config'


def launch_arguments():
    """name -> (default text, description) of every launch argument (one table for both
    launch files: bisenet_ros.ros.launch_args.ARGUMENTS)."""
    return {a.name: (a.default, a.description) for a in ARGUMENTS}


def test_launch_file_compiles_and_every_argument_is_described():
    compile(LAUNCH.read_text(), str(LAUNCH), 'exec')
    args = launch_arguments()
    for name in ('image_topics', 'model', 'backend', 'precision', 'device', 'params_file',
                 'namespace', 'max_rate', 'compressed', 'depth_topic', 'confidence_mono8',
                 'lifecycle', 'autostart', 'use_fastdds_profile', 'log_level'):
        assert name in args, name
        assert len(args[name][1]) > 20, f'{name}: description too short'


def test_referenced_config_files_exist_and_are_installed():
    text = LAUNCH.read_text()
    for name in ('segmentation.yaml', 'fastdds_large_images.xml'):
        assert f"'{name}'" in text and (CONFIG / name).is_file(), name
    setup = (ROOT / 'setup.py').read_text()
    for pattern in ("'launch/*.launch.py'", "'config/**/*.yaml'", "'config/**/*.xml'"):
        assert pattern in setup, f'setup.py does not install {pattern}'


def test_params_yaml_holds_only_valid_node_parameters():
    data = yaml.safe_load((CONFIG / 'segmentation.yaml').read_text())
    (section, body), = data.items()
    assert section.endswith('segmentation_node')
    values = body['ros__parameters']
    for name, value in values.items():
        assert name in SPEC_BY_NAME, f'unknown parameter {name}'
        assert validate(name, value) is None, (name, validate(name, value))
    assert set(values) == set(SPEC_BY_NAME), set(SPEC_BY_NAME) ^ set(values)


def test_fastdds_profile_has_the_large_shared_memory_segment():
    root = ElementTree.parse(CONFIG / 'fastdds_large_images.xml').getroot()
    ns = {'dds': 'http://www.eprosima.com'}
    sizes = [int(e.text) for e in root.iterfind('.//dds:segment_size', ns)]
    assert sizes and min(sizes) >= 2 * 3840 * 2160 * 3  # two 4K bgr8 frames
    participant = root.find('.//dds:participant', ns)
    assert participant.get('is_default_profile') == 'true'


class _Recorder:
    """Stand-in for a launch class: keeps its constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def launch_stand_ins(monkeypatch, tmp_path):
    """Minimal ``launch``/``launch_ros``/``ament_index_python`` modules for the launch file."""
    share = tmp_path / 'share'

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules = {
        'launch': types.SimpleNamespace(LaunchDescription=_Recorder),
        'launch.actions': types.SimpleNamespace(DeclareLaunchArgument=_Recorder,
                                                OpaqueFunction=_Recorder),
        'launch.substitutions': types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        'launch_ros': types.SimpleNamespace(),
        'launch_ros.actions': types.SimpleNamespace(Node=_Recorder),
        'ament_index_python': types.SimpleNamespace(),
        'ament_index_python.packages': types.SimpleNamespace(
            get_package_share_directory=lambda pkg: str(share / pkg)),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = {}
    exec(compile(LAUNCH.read_text(), str(LAUNCH), 'exec'), namespace)
    return namespace, share


def run_launch(module, **given):
    description = module['generate_launch_description']()
    actions = description.args[0]
    defaults = {a.args[0]: a.kwargs['default_value'] for a in actions
                if 'default_value' in a.kwargs}
    opaque = actions[-1]
    (node,) = opaque.kwargs['function'](dict(defaults, **given))
    return defaults, node.kwargs


def test_launch_defaults_use_the_installed_config(launch_stand_ins):
    namespace, share = launch_stand_ins
    defaults, node = run_launch(namespace)
    params_file = str(share / 'bisenet_ros' / 'config' / 'segmentation.yaml')
    assert defaults['params_file'] == params_file
    assert node['package'] == 'bisenet_ros' and node['executable'] == 'segmentation_node'
    assert node['parameters'] == [params_file]  # empty arguments keep the file's values
    assert node['additional_env']['FASTDDS_DEFAULT_PROFILES_FILE'] == str(
        share / 'bisenet_ros' / 'config' / 'fastdds_large_images.xml')


def test_launch_arguments_override_the_params_file(launch_stand_ins):
    namespace, _ = launch_stand_ins
    _, node = run_launch(namespace, image_topics='/left/image_raw, /right/image_raw',
                         model='/models/m.onnx', backend='onnxruntime', max_rate='7.5',
                         compressed='true', namespace='robot1', use_fastdds_profile='false')
    overrides = node['parameters'][1]
    assert overrides == {'image_topics': ['/left/image_raw', '/right/image_raw'],
                         'model_path': '/models/m.onnx', 'backend': 'onnxruntime',
                         'max_rate': 7.5, 'compressed': True}
    for name, value in overrides.items():
        assert validate(name, value) is None
    assert node['namespace'] == 'robot1' and node['additional_env'] == {}


def test_nav2_costmap_example_maps_camvid_classes_to_the_node_topics():
    from bisenet_ros.labels import load_label_set
    data = yaml.safe_load((CONFIG / 'nav2' / 'semantic_costmap.yaml').read_text())
    layer = data['local_costmap']['local_costmap']['ros__parameters'][
        'semantic_segmentation_layer']
    camera = layer[layer['observation_sources']]
    assert (camera['segmentation_topic'], camera['confidence_topic'], camera['labels_topic'],
            camera['pointcloud_topic']) == ('/segmentation/mask',
                                            '/segmentation/confidence_mono8',
                                            '/segmentation/label_info', '/segmentation/points')
    names = set(load_label_set('camvid').class_names)
    kinds = {kind: camera[kind] for kind in camera['class_types']}
    for kind in kinds.values():
        assert set(kind['classes']) <= names, set(kind['classes']) - names
    assert set(kinds['traversable']['classes']) == {'road', 'pavement'}
    assert kinds['traversable']['max_cost'] == 0
    assert set(kinds['obstacle']['classes']) == {'pedestrian', 'bicyclist', 'car', 'pole'}
    assert kinds['obstacle']['max_cost'] == 254


def _yaml_lines():
    """parameter -> (value text, comment) of config/segmentation.yaml's parameter lines."""
    found = {}
    for line in (CONFIG / 'segmentation.yaml').read_text().splitlines():
        match = re.match(r'^    (\w+): (.*?)(?:\s+# (.*))?$', line)
        if match:
            found[match[1]] = (match[2], match[3] or '')
    return found


def test_params_yaml_values_are_the_spec_defaults():
    """The shipped file changes nothing: each value is the node's own default."""
    values = yaml.safe_load((CONFIG / 'segmentation.yaml').read_text())
    (body,) = values.values()
    for name, value in body['ros__parameters'].items():
        default = SPEC_BY_NAME[name].default
        assert value == default and type(value) is type(default), (name, value, default)


def test_params_yaml_comments_list_the_registry_choices():
    """Backends and precisions: the comment is the spec's choices (from the registry), in
    order, ``a | b | c``; nothing more, nothing missing."""
    lines = _yaml_lines()
    for name, spec in SPEC_BY_NAME.items():
        assert name in lines, f'{name} has no line in config/segmentation.yaml'
        if spec.choices:
            listed = lines[name][1].split('(')[0].strip()
            assert listed == ' | '.join(spec.choices), (name, listed, spec.choices)
    device = lines['device'][1]
    for form in ('cpu', 'cuda', 'cuda:<index>', 'gpu', 'gpu:<index>', 'auto'):
        assert form in re.findall(r'[\w:<>]+', device), (form, device)
    assert "model's own size" in lines['input_size'][1] and \
        "model's own size" in SPEC_BY_NAME['input_size'].description
