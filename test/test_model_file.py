"""Model identification: every kind, and what each file says about itself."""

import json

import numpy as np
import pytest

from bisenet_ros.inference.model_file import identify, kind_of, load_module
from bisenet_ros.model import load_model


@pytest.fixture(scope='module')
def reference_model(reference_fixture):
    return load_model(reference_fixture / 'city19_seed0.pth')


def test_kinds_by_suffix_and_type(reference_model):
    assert [kind_of(n) for n in ('a.pt', 'a.pth', 'a.onnx', 'a.xml', 'a.engine', 'a.plan',
                                 'a.trt')] == ['checkpoint', 'checkpoint', 'onnx',
                                               'openvino-ir', 'engine', 'engine', 'engine']
    assert kind_of(reference_model) == 'module'
    with pytest.raises(ValueError, match='expected a BiSeNetV2 module or a file path'):
        kind_of(42)


@pytest.mark.slow
def test_onnx_and_quantized_onnx_report_size_precision_and_label_set(tmp_path, reference_model):
    from bisenet_ros.export.onnx_export import export_onnx
    from bisenet_ros.export.quantize import quantize_int8
    path = export_onnx(reference_model, tmp_path / 'm.onnx', (64, 128),
                       outputs=('logits', 'labels'), batch=2)
    info = identify(path)
    assert (info.kind, info.input_size, info.batch, info.precision) == \
        ('onnx', (64, 128), 2, 'fp32')
    assert info.outputs == ('logits', 'labels') and info.num_classes == 19
    assert info.label_set == reference_model.label_set
    images = [np.full((64, 128, 3), v, np.uint8) for v in (40, 200)]
    single = export_onnx(reference_model, tmp_path / 's.onnx', (64, 128), outputs=('labels',))
    q = identify(quantize_int8(single, tmp_path / 'q.onnx', images, (64, 128), method='minmax'))
    assert (q.kind, q.precision, q.input_size) == ('onnx-int8', 'int8', (64, 128))


def test_engine_sidecar_and_missing_files(tmp_path, reference_model):
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'not an engine')
    assert identify(engine).input_size is None  # no sidecar: nothing known but the kind
    (tmp_path / 'm.json').write_text(json.dumps({
        'key': {'input_shape': [1, 3, 256, 512], 'dynamic_batch': False, 'precision': 'fp16'},
        'label_set': reference_model.label_set.to_dict()}))
    info = identify(engine)
    assert (info.kind, info.input_size, info.batch, info.precision) == \
        ('engine', (256, 512), 1, 'fp16')
    assert info.num_classes == 19
    with pytest.raises(FileNotFoundError, match='nope.onnx'):
        identify(tmp_path / 'nope.onnx')


def test_load_module_reads_checkpoints_and_refuses_exports(reference_fixture, reference_model,
                                                           tmp_path):
    assert load_module(reference_model) is reference_model
    module = load_module(reference_fixture / 'city19_seed0.pth')
    assert module.num_classes == 19
    engine = tmp_path / 'x.engine'
    engine.write_bytes(b'')
    with pytest.raises(ValueError, match='engine file, not a PyTorch checkpoint'):
        load_module(engine)
