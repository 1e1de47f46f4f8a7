"""precision='auto': the candidates per device and CPU-feature mask, the agreement guard, its
fallback, its cached verdicts, and explicit precisions left alone.

The masks are forced with BISENET_CPU_FLAGS; on a CPU without native bf16 OpenVINO runs its
bf16 candidate in fp32, which the guard measures like any other (agreement 100%).
"""

import shutil

import numpy as np
import pytest

from bisenet_ros.cpu_features import features_from, FLAGS_ENV
from bisenet_ros.export.cache import CACHE_ENV
from bisenet_ros.inference import Segmenter
from bisenet_ros.inference.backends.auto_precision import Candidate, FP32, Guard, plan
from bisenet_ros.resources import default_model_path

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')
pytest.importorskip('openvino', reason='openvino is not installed')

AMX = 'avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile'
AVX2 = 'sse2 avx avx2 fma'
BF16 = 'avx2 avx512f avx512_bf16'  # native bf16 without fast int8: no int8 candidate
VNNI = 'avx2 fma avx_vnni'


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    """One artifact cache for the module (exports are shared; verdicts are cleared per test
    where a test needs a fresh measurement)."""
    return tmp_path_factory.mktemp('cache')


@pytest.fixture
def cpu(monkeypatch, cache_dir):
    monkeypatch.setenv(CACHE_ENV, str(cache_dir))

    def force(flags: str) -> None:
        monkeypatch.setenv(FLAGS_ENV, flags)
        shutil.rmtree(cache_dir / 'auto', ignore_errors=True)  # no verdict from another test

    return force


def _labels(passed):
    return [label for label, _ in passed]


def test_candidates_per_device_and_mask():
    amx, avx2, vnni = (features_from(f.split()) for f in (AMX, AVX2, VNNI))
    bf16 = (('float_precision', 'bf16'),)
    assert plan('cpu', amx) == [Candidate('openvino', 'int8', bf16), Candidate('openvino', 'bf16'),
                                Candidate('torch', 'bf16'), FP32]
    assert plan('cpu', vnni) == [Candidate('openvino', 'int8'), Candidate('onnxruntime', 'int8'),
                                 FP32]
    assert plan('cpu', avx2) == [Candidate('openvino', 'int8'), Candidate('onnxruntime', 'int8'),
                                 FP32]  # int8 measured faster than fp32 on AVX2 too
    assert plan('cpu', features_from(['sse2'])) == [FP32]
    assert plan('cuda', avx2, tensorrt=True, cuda_bf16=True) == [
        Candidate('tensorrt', 'fp16'), Candidate('torch', 'fp16'), Candidate('torch', 'bf16'),
        FP32]
    assert plan('cuda', avx2) == [Candidate('torch', 'fp16'), FP32]
    assert plan('gpu', amx) == [Candidate('openvino', 'fp16'), FP32]
    assert [c.label for c in plan('cpu', amx)] == ['openvino:int8+bf16', 'openvino:bf16',
                                                   'torch:bf16', 'fp32']


@pytest.mark.slow
def test_an_avx2_host_at_native_size_takes_one_dynamic_int8_graph_behind_the_guard(
        cpu, cache_dir):
    """int8 (faster on AVX2 too) needs no input_size: one dynamic-H/W graph, calibrated once,
    runs every image at its own size, and its verdict is measured once at the guard size."""
    cpu(AVX2)
    with Segmenter(default_model_path(), threads=1) as seg:
        choice = seg.choice
        assert (choice.backend, choice.precision) == ('openvino', 'int8'), choice.summary()
        assert choice.agreement is not None and choice.agreement >= 0.99
        assert choice.passed_over == [] and 'fast int8: no' in choice.cpu
        for shape in ((40, 60), (100, 150)):
            assert seg.segment(np.zeros(shape + (3,), np.uint8)).labels.shape == shape
        assert seg.input_size is None
    assert len(list((cache_dir / 'auto').glob('*.record.json'))) == 1


def test_a_bf16_host_takes_openvino_bf16_behind_the_guard_and_caches_the_verdict(cpu, cache_dir):
    cpu(BF16)
    with Segmenter(default_model_path(), threads=1) as seg:
        choice = seg.choice
        assert (choice.backend, choice.precision) == ('openvino', 'bf16'), choice.summary()
        assert choice.agreement is not None and choice.agreement >= 0.99 and not choice.cached
        assert choice.passed_over == []
        assert 'agreement with fp32' in choice.summary()
    records = sorted((cache_dir / 'auto').glob('*.record.json'))
    stamps = [r.stat().st_mtime_ns for r in records]
    assert len(records) == 1
    with Segmenter(default_model_path(), threads=1) as warm:  # warm start: no measurement
        assert (warm.choice.backend, warm.choice.precision) == ('openvino', 'bf16')
        assert warm.choice.cached and warm.choice.agreement == choice.agreement
    assert [r.stat().st_mtime_ns for r in records] == stamps


def test_a_missed_bound_falls_back_to_the_next_candidate_then_fp32(cpu):
    cpu(BF16)
    with Segmenter(default_model_path(), threads=1, agreement_bound=1.01) as seg:
        choice = seg.choice
        assert choice.precision == 'fp32' and choice.backend == 'onnxruntime'
        assert _labels(choice.passed_over) == ['openvino:bf16', 'torch:bf16']
        assert all('agreement' in why and '< 101.00%' in why
                   for _, why in choice.passed_over), choice.passed_over
        assert choice.reason == 'no faster configuration passed'


@pytest.mark.slow
def test_a_fast_int8_host_tries_int8_first_and_takes_it_only_within_the_bound(cpu):
    cpu(VNNI)
    with Segmenter(default_model_path(), threads=1, input_size=(96, 128)) as seg:
        choice = seg.choice
        order = ['openvino:int8', 'onnxruntime:int8']
        tried = _labels(choice.passed_over)
        assert tried == order[:len(tried)], choice.summary()
        if choice.precision == 'int8':
            assert choice.agreement >= 0.99 and seg.backend.precision == 'int8'
        else:
            assert tried == order and choice.precision == 'fp32'
        assert seg.segment(np.zeros((96, 128, 3), np.uint8)).labels.shape == (96, 128)


def test_the_guard_normalises_frames_as_the_loaded_model_says(cache_dir, monkeypatch):
    """A checkpoint names its label set only once loaded: the guard takes the fp32 backend's
    (CamVid's mean and std for the packaged model), not ImageNet's."""
    from bisenet_ros.export.verify import sample_images
    from bisenet_ros.inference.backends import create_backend
    from bisenet_ros.preprocess import preprocess
    monkeypatch.setenv(CACHE_ENV, str(cache_dir))
    model = default_model_path()
    guard = Guard('packaged', (64, 96), lambda: create_backend('onnxruntime', model,
                                                               precision='fp32', threads=1),
                  features_from([]))
    label_set = guard.batches() and guard.reference.label_set
    assert label_set.name == 'camvid' and tuple(label_set.mean) != (0.485, 0.456, 0.406)
    frame = sample_images(None, 1)[0]
    expected, _ = preprocess([frame], label_set.mean, label_set.std, bgr=True,
                             input_size=(64, 96))
    np.testing.assert_array_equal(guard.batches()[0], expected)
    guard.reference.close()


def test_an_explicit_precision_or_backend_is_honoured(cpu, cache_dir):
    cpu(AMX)
    with Segmenter(default_model_path(), backend='openvino', precision='fp32', threads=1) as seg:
        assert (seg.choice.backend, seg.choice.precision) == ('openvino', 'fp32')
        assert seg.choice.reason == 'precision set explicitly' and seg.choice.agreement is None
    assert not (cache_dir / 'auto').exists()
    with Segmenter(default_model_path(), backend='onnxruntime', threads=1) as seg:
        choice = seg.choice  # auto within the backend asked for
        assert (choice.backend, choice.precision) == ('onnxruntime', 'fp32')
        assert ('openvino:bf16', 'backend is set to onnxruntime') in choice.passed_over


def test_a_model_that_cannot_run_the_guard_frames_falls_back_to_fp32_with_the_reason(cpu):
    cpu(BF16)
    bad = [np.zeros((8, 8), np.uint8)]  # not an (H, W, 3) image
    with Segmenter(default_model_path(), threads=1, guard_frames=bad) as seg:
        assert seg.choice.precision == 'fp32'
        reasons = dict(seg.choice.passed_over)
        assert 'ValueError' in reasons['openvino:bf16'] and '(H, W, 3)' in reasons['openvino:bf16']


@pytest.mark.slow
def test_a_model_with_another_class_count_is_guarded_on_the_same_frames(cpu, tmp_path):
    from ros_harness import write_random_checkpoint
    cpu(BF16)
    path = write_random_checkpoint(tmp_path / 'five.pt', seed=3, num_classes=5)
    with Segmenter(str(path), threads=1) as seg:
        assert seg.label_set.num_classes == 5
        assert seg.choice.agreement is not None or seg.choice.precision == 'fp32'
        if seg.choice.precision == 'bf16':
            assert seg.choice.agreement >= 0.99
