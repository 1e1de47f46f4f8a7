"""Checks before a model serves, on real broken files made here: ONNX graphs transposed to
channels-last (input or logits, fixed and symbolic sizes), label sets that do not fit, a
checkpoint with NaN weights caught by the test run."""

import math

import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest
import torch

from bisenet_ros.export.onnx_export import export_onnx
from bisenet_ros.inference import Segmenter
from bisenet_ros.inference.model_check import check_candidate, check_label_set, \
    check_layout, ModelCheckError
from bisenet_ros.inference.model_file import identify
from bisenet_ros.labels import LabelSet, LabelSetError, load_label_set
from bisenet_ros.model import load_model, save_checkpoint

H, W = 64, 96


@pytest.fixture(scope='module')
def model(reference_fixture):
    return load_model(reference_fixture / 'city19_seed0.pth')


@pytest.fixture(scope='module')
def nchw(model, tmp_path_factory):
    """A valid export with logits and labels."""
    return export_onnx(model, tmp_path_factory.mktemp('onnx') / 'nchw.onnx', (H, W),
                       outputs=('logits', 'labels'))


def channels_last_input(src, dst, dims):
    """``src`` fed through a Transpose from an NHWC input of ``dims`` (ints or names)."""
    m = onnx.load(str(src))
    g = m.graph
    old = g.input[0].name
    del g.input[:]
    g.input.append(helper.make_tensor_value_info('image_nhwc', TensorProto.FLOAT, dims))
    g.node.insert(0, helper.make_node('Transpose', ['image_nhwc'], [old], perm=[0, 3, 1, 2]))
    onnx.save(m, str(dst))
    return dst


def channels_last_logits(src, dst):
    """``src`` with its logits output transposed to (N, H, W, C) (labels dropped)."""
    m = onnx.load(str(src))
    g = m.graph
    logits = next(o for o in g.output if o.name == 'logits')
    classes = logits.type.tensor_type.shape.dim[1].dim_value
    for node in g.node:
        node.output[:] = ['logits_nchw' if o == 'logits' else o for o in node.output]
        node.input[:] = ['logits_nchw' if i == 'logits' else i for i in node.input]
    g.node.append(helper.make_node('Transpose', ['logits_nchw'], ['logits'], perm=[0, 2, 3, 1]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                                  [1, H, W, classes]))
    onnx.save(m, str(dst))
    return dst


def test_a_valid_export_passes_and_runs(nchw):
    assert identify(nchw).num_classes == 19
    with Segmenter(str(nchw), backend='onnxruntime') as seg:
        check_candidate(seg)


@pytest.mark.parametrize('dims', [[1, H, W, 3], ['N', 'H', 'W', 3]])
def test_channels_last_input_is_refused(nchw, tmp_path, dims):
    path = channels_last_input(nchw, tmp_path / 'nhwc_in.onnx', dims)
    onnx.checker.check_model(onnx.load(str(path)))  # a well-formed graph, only the wrong layout
    with pytest.raises(ModelCheckError, match=r'channels-last input .*expected channels-first'):
        identify(path)
    with pytest.raises(ValueError, match='channels-last input'):
        Segmenter(str(path), backend='onnxruntime')


def test_channels_last_logits_are_refused_not_run_as_a_64_class_model(nchw, tmp_path):
    path = channels_last_logits(nchw, tmp_path / 'nhwc_out.onnx')
    onnx.checker.check_model(onnx.load(str(path)))
    with pytest.raises(ModelCheckError, match=r"channels-last output logits \[1, 64, 96, 19\]"):
        identify(path)
    with pytest.raises(ValueError, match='channels-last output logits'):
        Segmenter(str(path), backend='onnxruntime')


@pytest.mark.parametrize('input_shape,outputs,reason', [
    ((1, 3, H, W), {'logits': (1, 19, H, W), 'labels': (1, H, W)}, None),
    (('N', 3, 'H', 'W'), {'logits': ('N', 19, 'H', 'W')}, None),
    ((1, 3, H, W), {'labels': (1, W, H)}, r'output labels shape \[1, 96, 64\]'),
    ((1, 3, H, W), {'logits': (1, 'C', H, W)}, 'fixed class count'),
    ((1, 4, H, W), {}, 'expected 3 channels'),
    ((3, H, W), {}, r'expected \(N, 3, H, W\)'),
    (('N', 3, 'H', 'W'), {'logits': ('N', 'H', 'W', 19)}, 'channels-last output logits'),
])
def test_layout_rules(input_shape, outputs, reason):
    if reason is None:
        check_layout(input_shape, outputs)
    else:
        with pytest.raises(ModelCheckError, match=reason):
            check_layout(input_shape, outputs)


def test_label_sets_that_do_not_fit_are_refused():
    camvid = load_label_set('camvid')
    check_label_set(camvid, 11)
    with pytest.raises(ModelCheckError, match='camvid has 11 classes but the model predicts 19'):
        check_label_set(camvid, 19)
    base = camvid.to_dict()
    for key, values, reason in (('std', [0.2, math.nan, 0.2], 'must be finite'),
                                ('mean', [math.inf, 0.4, 0.4], 'must be finite'),
                                ('std', [0.2, 0.0, 0.2], 'must be positive')):
        with pytest.raises(LabelSetError, match=reason):
            LabelSet.from_dict(dict(base, **{key: values}))
    bad_colour = dict(base, classes=[dict(c) for c in base['classes']])
    bad_colour['classes'][3]['color'] = [0, 256, 0]
    with pytest.raises(LabelSetError, match='colour of class 3 must be 3 ints in 0..255'):
        LabelSet.from_dict(bad_colour)


def test_the_test_run_refuses_a_checkpoint_with_nan_weights(reference_fixture, tmp_path):
    model = load_model(reference_fixture / 'city19_seed0.pth')  # a copy of its own
    with torch.no_grad():
        next(p for p in model.parameters() if p.ndim == 4)[0, 0, 0, 0] = math.nan
    path = save_checkpoint(tmp_path / 'nan.pt', model, model.label_set)
    with Segmenter(str(path), backend='torch') as seg:
        # what it would publish: every confidence NaN (and labels all 0)
        assert np.isnan(seg.segment(np.zeros((H, W, 3), np.uint8), confidence=True)
                        .confidence).all()
        with pytest.raises(ModelCheckError, match='non-finite values'):
            check_candidate(seg)
