"""TensorRT: version-gated build plans and the engine cache (pure Python, always run), and
engine build + parity on a GPU (skipped with the reason where tensorrt or a GPU is absent)."""

import json
import logging

import numpy as np
import pytest

from bisenet_ros.inference.backends.base import cuda_available, module_available
from bisenet_ros.export.tensorrt_plan import (build_plan, cache_paths, EngineKey, mismatches,
                                              parse_version, read_sidecar, write_sidecar)

KEY = EngineKey(trt_version='10.3.0', compute_capability='8.7', precision='fp16',
                input_shape=(1, 3, 512, 1024), dynamic_batch=False,
                onnx_sha256='0123456789abcdef')


@pytest.mark.parametrize('version, precision, typed, flags, variant, calib, explicit', [
    ('8.6.2', 'fp32', False, (), 'fp32', False, True),       # JetPack 6.0
    ('8.6.2', 'fp16', False, ('FP16',), 'fp32', False, True),
    ('10.3.0.30', 'int8', False, ('INT8', 'FP16'), 'fp32', True, False),  # JetPack 6.1/6.2
    ('10.11.0', 'fp16', False, ('FP16',), 'fp32', False, False),
    ('10.12.0', 'fp16', True, (), 'fp16', False, False),     # weak typing deprecated
    ('10.13.3', 'int8', True, (), 'qdq', False, False),
    ('11.0.0', 'fp32', True, (), 'fp32', False, False),      # precision flags removed
    ('11.4.1', 'int8', True, (), 'qdq', False, False),
])
def test_build_plan_follows_the_tensorrt_version(version, precision, typed, flags, variant,
                                                 calib, explicit):
    plan = build_plan(version, precision)
    assert plan.strongly_typed is typed
    assert plan.builder_flags == flags
    assert plan.onnx_variant == variant
    assert plan.calibrator is calib
    assert plan.explicit_batch_flag is explicit


def test_build_plan_rejects_old_versions_and_unknown_precisions():
    with pytest.raises(ValueError, match='too old'):
        build_plan('8.5.3', 'fp32')
    with pytest.raises(ValueError, match='bf16'):
        build_plan('10.3.0', 'bf16')
    with pytest.raises(ValueError, match='parse'):
        parse_version('ten')
    assert parse_version('10.12.0.36') == (10, 12)


def test_engine_key_changes_with_every_field():
    digests = {KEY.digest()}
    for change in ({'trt_version': '10.4.0'}, {'compute_capability': '8.6'},
                   {'precision': 'int8'}, {'input_shape': (1, 3, 256, 512)},
                   {'dynamic_batch': True}, {'onnx_sha256': 'ffffffffffffffff'}):
        other = EngineKey(**{**KEY.__dict__, **change})
        digests.add(other.digest())
        assert list(mismatches(KEY, other)) == list(change)
    assert len(digests) == 7
    assert mismatches(KEY, EngineKey.from_dict(KEY.to_dict())) == {}


def test_cache_paths_and_sidecar_round_trip(tmp_path):
    engine, side = cache_paths(tmp_path, 'camvid', KEY)
    assert engine.parent == tmp_path and engine.suffix == '.engine'
    assert 'fp16_512x1024' in engine.name and KEY.digest() in engine.name
    assert read_sidecar(engine) is None
    write_sidecar(engine, KEY, {'onnx': '/x/model.onnx'})
    data = read_sidecar(engine)
    assert EngineKey.from_dict(data['key']) == KEY and data['onnx'] == '/x/model.onnx'
    assert json.loads(side.read_text())['key']['precision'] == 'fp16'


def _require_tensorrt_gpu():
    if not module_available('tensorrt'):
        pytest.skip('tensorrt is not installed (needs an NVIDIA GPU machine)')
    if not cuda_available():
        pytest.skip('no CUDA GPU visible to torch (tensorrt tests need a gpu)')


@pytest.fixture(scope='module')
def small_model():
    import torch

    from bisenet_ros.model import build_model
    torch.manual_seed(0)
    return build_model('bisenetv2', 19).eval()


@pytest.mark.parametrize('precision, bound', [('fp32', 0.999), ('fp16', 0.99)])
def test_tensorrt_engine_agrees_with_torch(precision, bound, small_model, tmp_path):
    _require_tensorrt_gpu()
    from bisenet_ros.export.verify import sample_images, verify_backend
    from bisenet_ros.inference.backends.tensorrt_backend import TensorRTBackend
    from bisenet_ros.labels import LabelSet
    ls = LabelSet.generic(19)
    small_model.label_set = ls
    with TensorRTBackend(small_model, precision=precision, input_size=(256, 512),
                         cache_dir=tmp_path) as backend:
        result = verify_backend(small_model, backend, sample_images(), (256, 512), ls)
        out = backend.infer(np.zeros((1, 3, 256, 512), np.float32), ('labels', 'confidence'))
    print(f'tensorrt {precision}: {result.summary()}')
    assert result.agreement >= bound
    assert out['labels'].shape == (1, 256, 512) and out['confidence'].max() <= 1.0 + 1e-3


def test_stale_engine_is_rebuilt(small_model, tmp_path, caplog):
    _require_tensorrt_gpu()
    from bisenet_ros.inference.backends.tensorrt_backend import TensorRTBackend
    with TensorRTBackend(small_model, input_size=(64, 128), cache_dir=tmp_path):
        pass
    engine = next(tmp_path.glob('*.engine'))
    side = read_sidecar(engine)
    side['key']['trt_version'] = '8.6.0'  # pretend another TensorRT built it
    engine.with_suffix('.json').write_text(json.dumps(side))
    caplog.set_level(logging.WARNING)
    with TensorRTBackend(engine) as backend:
        assert backend.fixed_size == (64, 128)
    assert 'stale' in caplog.text
    assert read_sidecar(engine)['key']['trt_version'] != '8.6.0'
