"""OpenVINO backend: parity with the reference fixture, the Q/DQ int8 file and bf16 against
torch fp32 on real CamVid frames, pruned outputs, per-model threads, profiling, clear errors."""


import numpy as np
import pytest

pytest.importorskip('openvino', reason='openvino is not installed (pip install openvino)')

from bisenet_ros.export.onnx_export import export_onnx  # noqa: E402
from bisenet_ros.export.quantize import quantize_int8  # noqa: E402
from bisenet_ros.inference import BackendUnavailableError, create_backend, Segmenter  # noqa: E402
from bisenet_ros.inference.backends.openvino_backend import OpenVINOBackend  # noqa: E402
from bisenet_ros.inference.postprocess import max_softmax  # noqa: E402
from bisenet_ros.model import load_model  # noqa: E402
from conftest import narrowed_threads, needs_two_cpus  # noqa: E402


@pytest.fixture(scope='module')
def reference_model(reference_fixture):
    return load_model(reference_fixture / 'city19_seed0.pth')


def test_matches_the_reference_fixture_from_a_module_and_from_the_onnx_file(
        reference_fixture, reference_model, tmp_path):
    x = np.load(reference_fixture / 'input_256x512.npy')
    ref = np.load(reference_fixture / 'logits_eval.npy')
    pred = np.load(reference_fixture / 'pred.npy')
    tolerance = 2e-4 * float(np.abs(ref).max()) + 1e-4  # the fixture README's bound
    path = export_onnx(reference_model, tmp_path / 'm.onnx', (256, 512),
                       outputs=('logits', 'labels', 'confidence'))
    for model in (reference_model, path):
        with create_backend('openvino', model, threads=2, input_size=(256, 512)) as backend:
            out = backend.infer(x, ('logits', 'labels', 'confidence'))
            assert backend.fixed_size == (256, 512) and backend.precision == 'fp32'
            assert backend.label_set == reference_model.label_set
        assert np.abs(out['logits'] - ref).max() <= tolerance
        assert out['labels'].dtype == np.uint8 and (out['labels'] == pred).mean() >= 0.999
        np.testing.assert_array_equal(out['labels'], out['logits'].argmax(1))
        np.testing.assert_allclose(out['confidence'], max_softmax(out['logits']), atol=1e-5)


def test_labels_alone_run_a_pruned_model_that_agrees_with_the_full_one(reference_model):
    x = np.random.default_rng(1).normal(size=(2, 3, 64, 96)).astype(np.float32)
    with OpenVINOBackend(reference_model, input_size=(64, 96), threads=1) as ov:
        labels = ov.infer(x, ('labels',))
        full = ov.infer(x, ('logits', 'labels', 'confidence'))
        one = ov.infer(x[:1], ('labels',))  # another batch: its own static compile
        compiled = {key: entry[0] for key, entry in ov._compiled.items()}
    assert set(labels) == {'labels'}
    np.testing.assert_array_equal(labels['labels'], full['labels'])
    np.testing.assert_array_equal(one['labels'], full['labels'][:1])
    pruned = compiled[(2, 64, 96, ('labels',))]
    assert [o.get_any_name() for o in pruned.outputs] == ['labels']
    # threads are a property of each compiled model, nothing process-wide
    assert int(pruned.get_property('INFERENCE_NUM_THREADS')) == 1


def test_threads_do_not_touch_the_process(reference_model):
    import torch
    before = torch.get_num_threads()
    with Segmenter(reference_model, backend='openvino', input_size=(64, 64), threads=1):
        pass
    other = 1 if before > 1 else 2  # a different count the CPUs allow (more is refused)
    with Segmenter(reference_model, backend='torch', threads=other):
        pass
    assert torch.get_num_threads() == before


def test_streams_run_calls_side_by_side_with_the_outputs_of_one_stream(reference_model):
    import threading
    frames = [np.random.default_rng(i).normal(size=(1, 3, 64, 96)).astype(np.float32)
              for i in range(4)]
    with OpenVINOBackend(reference_model, input_size=(64, 96), threads=1) as one:
        alone = [one.infer(x, ('labels', 'confidence')) for x in frames]
    with OpenVINOBackend(reference_model, input_size=(64, 96), threads=2, streams=2) as two:
        assert two.streams == 2 and two.describe().endswith(', 2 streams')
        together = {}
        start = threading.Barrier(2)

        def caller(k):
            start.wait()
            for i in range(k, 4 * 5, 2):  # each frame 5 times, two callers at once
                together.setdefault(i % 4, []).append(two.infer(frames[i % 4],
                                                                ('labels', 'confidence')))
        callers = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join()
        compiled = [entry[0] for _, entry in two._compiled.items()]
    assert int(compiled[0].get_property('NUM_STREAMS')) == 2
    assert sorted(together) == [0, 1, 2, 3] and all(len(v) == 5 for v in together.values())
    for i, outputs in together.items():
        for out in outputs:
            np.testing.assert_array_equal(out['labels'], alone[i]['labels'])
            np.testing.assert_allclose(out['confidence'], alone[i]['confidence'], atol=1e-5)


def test_streams_auto_follows_the_physical_cores_and_bad_values_fail(reference_model):
    from bisenet_ros.cpu_features import physical_cores
    with OpenVINOBackend(reference_model, input_size=(64, 96), streams='auto') as ov:
        assert ov.streams == (2 if physical_cores() >= 2 else 1)
    with OpenVINOBackend(reference_model, input_size=(64, 96)) as ov:
        assert ov.streams == 1
    for bad in (0, -1, 9, 'two', 1.5, True):
        with pytest.raises(ValueError, match=r"streams must be 'auto' or an integer in \[1, 8\], "
                                             f'got {bad!r}'):
            OpenVINOBackend(reference_model, input_size=(64, 96), streams=bad)


@needs_two_cpus
def test_inference_threads_are_not_pinned_to_cores():
    """OpenVINO pins its threads by default; a node shares its cores with the camera driver
    and DDS, so every thread of the process stays free to run on any CPU it was given."""
    from bisenet_ros.resources import default_model_path
    with Segmenter(default_model_path(), backend='openvino', input_size=(64, 64),
                   threads=2) as seg:
        seg.segment(np.zeros((64, 64, 3), np.uint8))
        threads, narrowed = narrowed_threads()
    assert threads > 2 and not narrowed, narrowed


@pytest.fixture(scope='module')
def trained_model():
    from bisenet_ros.resources import default_model_path
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f'packaged trained CamVid model {path} is not in this checkout yet')
    return load_model(path)


@pytest.fixture(scope='module')
def camvid_frames(camvid_dir):
    import cv2
    val = sorted((camvid_dir / 'val').glob('*.jpg'))[::17][:6]
    train = sorted((camvid_dir / 'train').glob('*.jpg'))[::30][:12]
    return {'images': [cv2.imread(str(f)) for f in val],
            'calibration': [cv2.imread(str(f)) for f in train]}


SIZE = (192, 256)


def _agreement(seg, reference, images):
    return float(np.mean([(seg.segment(img).labels == reference.segment(img).labels).mean()
                          for img in images]))


@pytest.mark.slow
def test_int8_qdq_file_and_bf16_agree_with_torch_fp32_on_camvid(tmp_path, trained_model,
                                                                camvid_frames):
    """The file `bisenet export --int8` writes runs as int8 as it is (no calibration images
    here) and agrees with torch fp32 as ONNX Runtime does on the same file (the int8 error is
    the quantization's, measured 98.2% for both on val frames at 512x1024 with these
    calibration frames); bf16 is the CPU's precision hint, within the issue's 99% bound."""
    source = export_onnx(trained_model, tmp_path / 'm.onnx', SIZE, outputs=('logits', 'labels'))
    qdq = quantize_int8(source, tmp_path / 'm_int8.onnx', camvid_frames['calibration'], SIZE)
    fp32 = Segmenter(trained_model, backend='torch', input_size=SIZE)
    with Segmenter(qdq, backend='openvino', precision='fp32') as int8:
        assert int8.backend.precision == 'int8' and int8.input_size == SIZE
        int8_agreement = _agreement(int8, fp32, camvid_frames['images'])
    with Segmenter(qdq, backend='onnxruntime') as ort:
        ort_agreement = _agreement(ort, fp32, camvid_frames['images'])
    with Segmenter(source, backend='openvino', precision='bf16') as bf16:
        assert bf16.backend.precision == 'bf16'
        bf16_agreement = _agreement(bf16, fp32, camvid_frames['images'])
    print(f'int8 agreement with fp32: openvino {int8_agreement:.4f}, onnxruntime '
          f'{ort_agreement:.4f}; openvino bf16 {bf16_agreement:.4f}')
    assert int8_agreement >= 0.97 and abs(int8_agreement - ort_agreement) <= 0.01
    assert bf16_agreement >= 0.99


@pytest.mark.slow
def test_int8_from_a_module_quantizes_on_calibration_images(trained_model, camvid_frames):
    with OpenVINOBackend(trained_model, precision='int8', input_size=(64, 128),
                         calibration_images=camvid_frames['calibration'][:2]) as ov:
        assert ov.precision == 'int8'
        out = ov.infer(np.zeros((1, 3, 64, 128), np.float32), ('labels',))
    assert out['labels'].shape == (1, 64, 128)


def test_profile_reports_time_per_layer_type(reference_model):
    with OpenVINOBackend(reference_model, input_size=(64, 64), threads=1, profile=True) as ov:
        with pytest.raises(RuntimeError, match='one infer'):
            ov.profile()
        ov.infer(np.zeros((1, 3, 64, 64), np.float32), ('labels',))
        layers = ov.profile(top=5)
    assert 0 < len(layers) <= 5 and all(ms >= 0 for ms in layers.values())
    assert any(name.startswith('Convolution') for name in layers)


def test_unsupported_devices_precisions_and_files_fail_clearly(reference_model, tmp_path):
    with pytest.raises(BackendUnavailableError, match='fp16 runs on a GPU'):
        OpenVINOBackend(reference_model, precision='fp16')
    with pytest.raises(BackendUnavailableError, match='CUDA device'):
        OpenVINOBackend(reference_model, device='cuda')
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'')
    with pytest.raises(ValueError, match='tensorrt backend'):
        OpenVINOBackend(engine)
    with pytest.raises(ValueError, match='float_precision'):
        OpenVINOBackend(reference_model, precision='int8', float_precision='fp16')


def test_gpu_device_when_openvino_lists_one(reference_model):
    import openvino as ov
    x = np.random.default_rng(2).normal(size=(1, 3, 64, 96)).astype(np.float32)
    if 'GPU' not in ' '.join(ov.Core().available_devices):
        with pytest.raises(BackendUnavailableError, match='not among the OpenVINO devices'):
            OpenVINOBackend(reference_model, device='gpu')
        return
    with OpenVINOBackend(reference_model, device='gpu', input_size=(64, 96)) as gpu, \
            OpenVINOBackend(reference_model, input_size=(64, 96)) as cpu:
        assert (gpu.infer(x, ('labels',))['labels'] ==
                cpu.infer(x, ('labels',))['labels']).mean() >= 0.99
