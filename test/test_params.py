"""Node parameter specs: validation reasons, descriptors with ranges, the frozen NodeParams."""

import dataclasses

import pytest

from bisenet_ros.resources import default_model_path
from bisenet_ros.ros.params import (descriptor, NodeParams, OUTPUT_NAMES, ParamError,
                                    reload_needed, resolve_topic, SPECS, validate)


def test_defaults_are_valid_and_model_defaults_to_the_packaged_one():
    params = NodeParams.from_values({})
    assert params.model_path == str(default_model_path())  # '' means the packaged model
    assert NodeParams.from_values({'model_path': ' '}).model_path == str(default_model_path())
    assert params.image_topics == ('/camera/image_raw',)
    assert params.model_input_size is None
    assert params.max_rate == 0.0 and params.backend == 'auto'
    for spec in SPECS:
        assert validate(spec.name, spec.default) is None, spec.name


@pytest.mark.parametrize('name,value,reason', [
    ('max_rate', -1.0, 'must be in 0.0..1000.0'),
    ('max_rate', 'fast', 'expected float'),
    ('overlay_alpha', 1.5, 'must be in 0.0..1.0'),
    ('confidence_threshold', True, 'expected float'),
    ('backend', 'caffe', 'must be one of auto, torch, onnxruntime, openvino, tensorrt'),
    ('precision', 'int4', 'must be one of auto, fp32, fp16, bf16, int8'),
    ('device', 'gpu0', "'gpu[:<index>]' (OpenVINO) or 'auto'"),
    ('input_size', [512], 'expected [height, width], got 1 values'),
    ('input_size', [16, 512], 'each of height, width must be in 32..8192'),
    ('input_size', [512.0, 1024.0], 'expected list of int'),
    ('threads', 1000, 'must be in 0..256'),
    ('image_topics', [], 'at least one image topic'),
    ('image_topics', ['/cam 1/image'], 'not valid ROS topic names'),
    ('image_topics', ['/a/image', '/a/image'], 'topics repeat'),
    ('publish_mask', 1, 'expected bool'),
    ('no_such_param', 1, "unknown parameter 'no_such_param'"),
])
def test_invalid_values_are_rejected_with_a_reason(name, value, reason):
    assert reason in validate(name, value)


@pytest.mark.parametrize('name,value', [
    ('max_rate', 0), ('max_rate', 30.0), ('device', 'cuda:1'), ('input_size', [512, 1024]),
    ('image_topics', ['/left/image_raw', 'right/image_raw', '~/image']),
    ('backend', 'onnxruntime'), ('output_prefix', 'seg/out')])
def test_valid_values_pass(name, value):
    assert validate(name, value) is None


def test_from_values_lists_every_problem_and_is_frozen():
    with pytest.raises(ParamError) as info:
        NodeParams.from_values({'max_rate': -2.0, 'backend': 'x'})
    assert 'max_rate: must be in' in str(info.value)
    assert 'backend: must be one of' in str(info.value)
    params = NodeParams.from_values({'max_rate': 5, 'input_size': [256, 512]})
    assert params.max_rate == 5.0 and isinstance(params.max_rate, float)
    assert params.model_input_size == (256, 512)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.max_rate = 1.0  # type: ignore[misc]


def test_reload_needed_only_for_model_settings():
    params = NodeParams.from_values({})
    assert not reload_needed(params, params.with_changes({'max_rate': 3.0,
                                                          'overlay_alpha': 0.2}))
    assert reload_needed(params, params.with_changes({'model_path': '/tmp/other.pt'}))
    assert reload_needed(params, params.with_changes({'input_size': [64, 64]}))
    with pytest.raises(ParamError, match='overlay_alpha'):
        params.with_changes({'overlay_alpha': 2.0})


def test_descriptors_carry_ranges_read_only_and_constraints():
    by_name = {spec.name: descriptor(spec) for spec in SPECS}
    rate = by_name['max_rate']
    assert rate.floating_point_range[0].from_value == 0.0
    assert rate.floating_point_range[0].to_value == 1000.0
    assert not rate.read_only and 'runtime' in rate.description
    assert by_name['threads'].integer_range[0].to_value == 256
    assert by_name['image_topics'].read_only
    assert 'onnxruntime' in by_name['backend'].additional_constraints
    assert 'reloads the model' in by_name['model_path'].description


def test_node_params_fields_are_the_spec_table():
    """NodeParams, a plain dataclass a type checker reads, has one field per spec of the
    default's type (lists as tuples), in table order; adding a spec without its field (or the
    other way round) fails here."""
    from dataclasses import fields
    from typing import get_args, get_origin, get_type_hints
    hints = get_type_hints(NodeParams)
    got = [(f.name, hints[f.name]) for f in fields(NodeParams)]
    assert [name for name, _ in got] == [s.name for s in SPECS]
    for (name, kind), spec in zip(got, SPECS):
        if isinstance(spec.default, list):
            assert get_origin(kind) is tuple and get_args(kind)[0] is type(spec.default[0])
        else:
            assert kind is type(spec.default), name
        value = getattr(NodeParams.from_values({}), name)
        assert isinstance(value, get_origin(kind) or kind), name


@pytest.mark.parametrize('values,namespace,reason', [
    ({'image_topics': ['/camera/image_raw', 'camera/image_raw']}, '/',
     'are the same topic (/camera/image_raw)'),
    ({'image_topics': ['/robot/cam/image', 'cam/image']}, '/robot',
     'are the same topic (/robot/cam/image) in namespace /robot'),
    ({'image_topics': ['~/image', '/segmentation_node/image']}, '/', 'are the same topic'),
    ({'image_topics': ['/segmentation/mask']}, '/', 'is an output of this node'),
    ({'image_topics': ['segmentation/overlay']}, '/', 'is an output of this node'),
    ({'image_topics': ['/a/image', '/out/a/color_mask'], 'output_prefix': 'out'}, '/',
     '/out/a/color_mask is an output of this node'),
    ({'image_topics': ['/segmentation/image'], 'use_camera_info': True}, '/',
     '/segmentation/camera_info is an output of this node'),
    ({'image_topics': ['/cam/image'], 'depth_topic': '/segmentation/points'}, '/',
     'is an output of this node'),
])
def test_topics_are_resolved_before_the_checks(values, namespace, reason):
    with pytest.raises(ParamError) as info:
        NodeParams.from_values(values, namespace=namespace)
    assert reason in str(info.value)


def test_the_same_names_in_other_namespaces_pass():
    NodeParams.from_values({'image_topics': ['/camera/image_raw', 'camera/image_raw']},
                           namespace='/robot')
    assert resolve_topic('~/image', '/robot') == '/robot/segmentation_node/image'
    assert resolve_topic('image', '/') == '/image' and resolve_topic('/x', '/robot') == '/x'


def test_names_over_the_dds_limit_are_refused_at_validation():
    long = '/' + 'a' * 250
    assert 'over the 247 a DDS topic name may have' in validate('image_topics', [long])
    assert 'over the 247' in validate('output_prefix', 'p' * 250)
    # each name fits, but the resolved output names do not
    with pytest.raises(ParamError, match='over the 247'):
        NodeParams.from_values({'output_prefix': 'p' * 235})
    reason = validate('image_topics', ['/x' * 200_000])
    assert len(reason) < 300  # one line, not the name echoed


def test_output_names_are_the_node_outputs():
    from bisenet_ros.ros.camera_io import OUTPUTS
    assert set(OUTPUTS) | {'class_info', 'label_info'} <= set(OUTPUT_NAMES)


def test_the_readme_parameter_table_is_the_spec_table():
    """The README's parameter table is generated from SPECS (``python -m
    bisenet_ros.ros.params``): a spec added, renamed or changed without it fails here."""
    from bisenet_ros.ros.params import markdown_table
    from conftest import REPO_ROOT
    assert markdown_table() in (REPO_ROOT / 'README.md').read_text()
