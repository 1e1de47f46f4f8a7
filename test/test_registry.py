"""The backend registry and ``auto``: ordered preference, reasons, one reader per file kind."""

import logging

import pytest

from bisenet_ros.inference import BackendUnavailableError, create_backend
from bisenet_ros.inference.backends.base import module_available
from bisenet_ros.inference.backends.registry import (BACKENDS, candidates, choose_backend,
                                                     PREFERENCE, REGISTRY)


def test_registry_lists_every_backend_once_and_loads_them_lazily():
    assert BACKENDS == ('auto', 'torch', 'onnxruntime', 'openvino', 'tensorrt')
    for name, entry in REGISTRY.items():
        assert entry.name == name and entry.available() == module_available(entry.requires)
        if entry.available():
            assert entry.load().name == name
        else:
            with pytest.raises(BackendUnavailableError, match=entry.requires):
                entry.load()
    for (device, precision), order in PREFERENCE.items():
        for name in order:  # every preferred backend says it runs that precision there
            assert precision in REGISTRY[name].precisions[device], (device, precision, name)


def test_auto_rule_and_its_reasons():
    assert choose_backend('m.engine', 'cpu', 'fp32')[0] == 'tensorrt'
    assert choose_backend('m.xml', 'cpu', 'fp32')[0] == 'openvino'
    name, reason = choose_backend('m.pt', 'cpu', 'fp32')
    assert name == 'onnxruntime' and 'fp32 on cpu' in reason
    has_ov = module_available('openvino')
    name, reason = choose_backend('m.pt', 'cpu', 'bf16')
    assert name == ('openvino' if has_ov else 'torch') and 'bf16' in reason
    name, reason = choose_backend('m.pt', 'cpu', 'int8')
    assert name == ('openvino' if has_ov else 'onnxruntime')
    if has_ov:
        assert choose_backend('m.onnx', 'cpu', 'bf16')[0] == 'openvino'
        assert choose_backend('m.onnx', 'gpu', 'fp16')[0] == 'openvino'
    with pytest.raises(BackendUnavailableError, match='torch does not read onnx models'):
        choose_backend('m.onnx', 'cpu', 'fp16')
    expected = 'tensorrt' if module_available('tensorrt') else 'onnxruntime'
    assert choose_backend('m.pt', 'cuda', 'fp16')[0] == expected
    if not module_available('tensorrt'):
        assert 'tensorrt: tensorrt is not installed' in choose_backend('m.pt', 'cuda', 'fp32')[1]


def test_candidates_skip_what_cannot_run_the_model():
    usable, passed = candidates('m.onnx', 'cpu', 'fp32')
    assert 'torch' not in usable and any(p.startswith('torch: ') for p in passed)
    assert candidates('m.plan', 'cuda', 'fp16') == (['tensorrt'], [])


def test_auto_logs_what_it_picked_and_why(reference_fixture, caplog):
    with caplog.at_level(logging.INFO, logger='bisenet_ros.inference.backends.registry'):
        with create_backend('auto', str(reference_fixture / 'city19_seed0.pth'),
                            precision='bf16') as backend:
            pass
    assert f'backend auto -> {backend.name} (first usable of' in caplog.text


def test_streams_need_a_backend_that_runs_them(reference_fixture):
    model = str(reference_fixture / 'city19_seed0.pth')
    with pytest.raises(ValueError, match='streams 2: the torch backend runs one inference call '
                                         'at a time; streams need openvino'):
        create_backend('torch', model, precision='fp32', streams=2)
    with create_backend('torch', model, precision='fp32', streams='auto') as backend:
        assert backend.streams == 1  # auto: what pays off, one call at a time here
    for bad in (0, 9, '2', True):
        with pytest.raises(ValueError, match=r"streams must be 'auto' or an integer in \[1, 8\], "
                                             f'got {bad!r}'):
            create_backend('openvino', model, precision='fp32', streams=bad)


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match='unknown backend'):
        create_backend('tflite', 'm.pt')
    with pytest.raises(ValueError, match='precision'):
        create_backend('torch', 'm.pt', precision='fp8')
