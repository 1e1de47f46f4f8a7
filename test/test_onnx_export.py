"""ONNX export: outputs, metadata, dynamic batch, checker, and the `bisenet export` tool."""

import argparse

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bisenet_ros.export.onnx_export import export_onnx, onnx_io, read_metadata
from bisenet_ros.labels import LabelSet
from bisenet_ros.model import build_model, save_checkpoint


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    net = build_model('bisenetv2', 6).eval()
    net.label_set = LabelSet.generic(6)
    return net


def test_all_outputs_dynamic_batch_and_metadata(model, tmp_path):
    path = export_onnx(model, tmp_path / 'm.onnx', (64, 96), dynamic_batch=True,
                       outputs=('logits', 'labels', 'confidence'))
    onnx.checker.check_model(onnx.load(str(path)))
    shape, outputs = onnx_io(path)
    assert shape == (None, 3, 64, 96)
    assert outputs == {'logits': onnx.TensorProto.FLOAT, 'labels': onnx.TensorProto.UINT8,
                       'confidence': onnx.TensorProto.FLOAT}
    meta = read_metadata(path)
    assert meta['input_size'] == [64, 96] and meta['dynamic_batch'] is True
    assert LabelSet.from_dict(meta['label_set']) == model.label_set
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert 'ArgMax' in ops  # labels computed in the graph, no plugins
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 96)).astype(np.float32)
    logits, labels, conf = session.run(None, {'input': x})
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(logits - ref).max() <= 2e-4 * np.abs(ref).max() + 1e-4
    assert (labels == ref.argmax(1)).mean() >= 0.999
    assert conf.shape == (3, 64, 96) and 0 < conf.min() and conf.max() <= 1


@pytest.mark.slow
def test_int32_labels_fixed_batch_and_fp16(model, tmp_path):
    path = export_onnx(model, tmp_path / 'l.onnx', (32, 64), batch=2, outputs=('labels',),
                       labels_dtype='int32')
    shape, outputs = onnx_io(path)
    assert shape == (2, 3, 32, 64) and outputs == {'labels': onnx.TensorProto.INT32}
    half = export_onnx(model, tmp_path / 'h.onnx', (32, 64), fp16=True)
    graph = onnx.load(str(half)).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert read_metadata(half)['precision'] == 'fp16'
    assert not model.training and next(model.parameters()).dtype == torch.float32


def test_keep_outputs_drops_what_feeds_no_kept_output(model, tmp_path):
    from bisenet_ros.export.onnx_export import keep_outputs
    path = export_onnx(model, tmp_path / 'm.onnx', (64, 96),
                       outputs=('logits', 'labels', 'confidence'))
    full = onnx.load(str(path))
    pruned = keep_outputs(full, ('labels',))
    onnx.checker.check_model(pruned)
    ops = [node.op_type for node in pruned.graph.node]
    assert [o.name for o in pruned.graph.output] == ['labels']
    assert 'Softmax' not in ops and 'ArgMax' in ops
    assert len(ops) < len(full.graph.node) and len(full.graph.output) == 3  # source untouched
    x = np.random.default_rng(2).normal(size=(1, 3, 64, 96)).astype(np.float32)
    run = {name: ort.InferenceSession(m.SerializeToString(), providers=['CPUExecutionProvider'])
           for name, m in (('full', full), ('pruned', pruned))}
    labels = run['pruned'].run(None, {'input': x})[0]
    np.testing.assert_array_equal(labels, run['full'].run(['labels'], {'input': x})[0])
    with pytest.raises(ValueError, match='scores'):
        keep_outputs(full, ('scores',))


@pytest.mark.parametrize('outputs, dtype, match', [
    (('scores',), 'uint8', 'outputs'),
    (('labels', 'labels'), 'uint8', 'outputs'),
    ((), 'uint8', 'outputs'),
    (('labels',), 'int64', 'labels_dtype'),
])
def test_bad_export_options_are_rejected(model, tmp_path, outputs, dtype, match):
    with pytest.raises(ValueError, match=match):
        export_onnx(model, tmp_path / 'x.onnx', (32, 32), outputs=outputs, labels_dtype=dtype)


@pytest.mark.slow
def test_export_tool_writes_checks_and_verifies(model, tmp_path, capsys):
    from bisenet_ros.cli import SUBCOMMANDS
    from bisenet_ros.tools import export
    assert SUBCOMMANDS['export'][0] == 'bisenet_ros.tools.export'
    ckpt = save_checkpoint(tmp_path / 'six.pt', model, model.label_set)
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    out = tmp_path / 'six.onnx'
    args = parser.parse_args(['--model', str(ckpt), '--input-size', '64x96', '-o', str(out),
                              '--outputs', 'labels,confidence', '--dynamic-batch'])
    assert export.run(args) == 0
    text = capsys.readouterr().out
    assert 'onnx.checker passed' in text and 'pixel agreement with PyTorch fp32' in text
    agreement = float(text.split('pixel agreement with PyTorch fp32: ')[1].split('%')[0])
    assert agreement >= 99.9
    assert onnx_io(out)[0] == (None, 3, 64, 96)
    with pytest.raises(ValueError, match='calibration-images'):
        export.run(parser.parse_args(['--model', str(ckpt), '--input-size', '64x96', '-o',
                                      str(out), '--int8']))


@pytest.mark.slow
def test_export_tool_int8_writes_a_quantized_file_and_verifies_it(model, tmp_path, capsys):
    import cv2

    from bisenet_ros.tools import export
    frames = tmp_path / 'frames'
    frames.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        smooth = cv2.GaussianBlur(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (9, 9), 3)
        cv2.imwrite(str(frames / f'{i}.png'), smooth)
    ckpt = save_checkpoint(tmp_path / 'six.pt', model, model.label_set)
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    out = tmp_path / 'six.onnx'
    assert export.run(parser.parse_args([
        '--model', str(ckpt), '--input-size', '64x96', '-o', str(out), '--outputs', 'labels',
        '--int8', '--int8-layers', 'all', '--calibration-images', str(frames),
        '--verify-images', str(frames)])) == 0
    int8 = tmp_path / 'six_int8.onnx'
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops
    assert f'wrote {int8}; onnxruntime int8 pixel agreement' in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize('size', [(360, 480), (720, 1280)], ids=['360x480', '720x1280'])
def test_exports_at_sizes_that_are_not_multiples_of_32(model, tmp_path, size):
    """CamVid's and a 720p camera's own sizes: fixed, dynamic batch, fp16 + int32 labels
    (TensorRT's ONNX), int8 for ONNX Runtime and Q/DQ int8 for TensorRT all have static output
    shapes, pass the model-file check and (fp32, int8) run at that size."""
    from bisenet_ros.export.onnx_export import onnx_shapes
    from bisenet_ros.export.quantize import quantize_int8
    from bisenet_ros.inference.model_file import identify
    h, w = size
    fixed = export_onnx(model, tmp_path / 'fixed.onnx', size, outputs=('logits', 'labels'))
    dynamic = export_onnx(model, tmp_path / 'dyn.onnx', size, dynamic_batch=True,
                          outputs=('logits', 'labels', 'confidence'))
    half = export_onnx(model, tmp_path / 'half.onnx', size, fp16=True, labels_dtype='int32',
                       outputs=('logits', 'labels', 'confidence'))
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8)]  # calibration: shapes only
    int8 = quantize_int8(fixed, tmp_path / 'int8.onnx', frames, size, method='minmax', limit=1)
    qdq = quantize_int8(fixed, tmp_path / 'qdq.onnx', frames, size, method='minmax', limit=1,
                        for_tensorrt=True)
    expected = {'fixed': {'logits': (1, 6, h, w), 'labels': (1, h, w)},
                'dyn': {'logits': ('batch', 6, h, w), 'labels': ('batch', h, w),
                        'confidence': ('batch', h, w)},
                'half': {'logits': (1, 6, h, w), 'labels': (1, h, w), 'confidence': (1, h, w)},
                'int8': {'logits': (1, 6, h, w), 'labels': (1, h, w)},
                'qdq': {'logits': (1, 6, h, w), 'labels': (1, h, w)}}
    for path in (fixed, dynamic, half, int8, qdq):
        _, outputs = onnx_shapes(path)
        assert outputs == expected[path.stem], (path.stem, outputs)
        identify(path)  # the layout check that refused these files
    x = rng.normal(size=(2, 3, h, w)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(dynamic), providers=['CPUExecutionProvider'])
    logits, labels, _ = session.run(None, {'input': x})
    assert logits.shape == (2, 6, h, w) and labels.shape == (2, h, w)
    assert (labels == ref.argmax(1)).mean() >= 0.999
    session = ort.InferenceSession(str(int8), providers=['CPUExecutionProvider'])
    logits, labels = session.run(None, {'input': x[:1]})
    assert logits.shape == (1, 6, h, w) and labels.shape == (1, h, w)
