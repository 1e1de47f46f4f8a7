"""Tests for bisenet_ros.inference.Segmenter on real (small, randomly initialised) models."""

import logging

import numpy as np
import pytest
import torch

from bisenet_ros.images import ColorImage
from bisenet_ros.inference import SegmentationResult, Segmenter
from bisenet_ros.labels import LabelSet, load_label_set
from bisenet_ros.limits import LimitError
from bisenet_ros.model import build_model, save_checkpoint

NUM_CLASSES = 5


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A 5-class BiSeNet V2 with random weights, saved in the project format."""
    torch.manual_seed(0)
    model = build_model('bisenetv2', NUM_CLASSES).eval()
    labels = LabelSet.generic(NUM_CLASSES)
    return save_checkpoint(tmp_path_factory.mktemp('model') / 'tiny.pt', model, labels)


@pytest.fixture(scope='module')
def segmenter(checkpoint):
    with Segmenter(checkpoint, backend='torch') as seg:
        yield seg


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _manual_labels(seg, image_bgr):
    """Independent pipeline: formula normalisation, model forward, argmax."""
    ls = seg.label_set
    rgb = image_bgr[:, :, ::-1].astype(np.float32) / 255.0
    x = ((rgb - np.array(ls.mean, np.float32)) / np.array(ls.std, np.float32))
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
    with torch.no_grad():
        logits = seg.backend._module(x)
    return logits[0].argmax(0).numpy(), torch.softmax(logits, 1)[0].amax(0).numpy()


def test_segment_matches_an_independent_pipeline(segmenter):
    image = _image(70, 100)  # not a multiple of 32: the model pads
    res = segmenter.segment(image, confidence=True)
    assert isinstance(res, SegmentationResult)
    labels, conf = _manual_labels(segmenter, image)
    assert res.labels.shape == (70, 100) and res.labels.dtype == np.uint8
    np.testing.assert_array_equal(res.labels, labels)
    assert res.confidence.dtype == np.float32
    np.testing.assert_allclose(res.confidence, conf, atol=1e-5)
    assert set(res.timings) == {'preprocess', 'inference', 'postprocess'}
    assert all(v >= 0 for v in res.timings.values())
    assert res.color is None and res.overlay is None


def test_color_overlay_and_channel_order(segmenter):
    image = _image(64, 96, seed=1)
    res = segmenter.segment(image, color=True, overlay=True, overlay_alpha=1.0)
    palette = segmenter.label_set.palette()
    np.testing.assert_array_equal(res.color, palette[res.labels])
    np.testing.assert_array_equal(res.overlay, res.color[:, :, ::-1])  # BGR in, BGR out
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    res_rgb = segmenter.segment(rgb, bgr=False, overlay=True, overlay_alpha=1.0)
    np.testing.assert_array_equal(res_rgb.labels, res.labels)
    np.testing.assert_array_equal(res_rgb.overlay, res.color)
    # A ColorImage brings its own order; bgr= applies to plain arrays only.
    typed = segmenter.segment(ColorImage(rgb, bgr=False), bgr=True, overlay=True,
                              overlay_alpha=1.0)
    np.testing.assert_array_equal(typed.labels, res.labels)
    np.testing.assert_array_equal(typed.overlay, res.color)


def test_confidence_threshold_sets_the_ignore_id(segmenter):
    image = _image(64, 64, seed=2)
    plain = segmenter.segment(image, confidence=True)
    threshold = float(np.median(plain.confidence))
    res = segmenter.segment(image, confidence=True, confidence_threshold=threshold)
    low = plain.confidence < threshold
    assert low.any() and (~low).any()
    assert (res.labels[low] == segmenter.label_set.ignore_index).all()
    np.testing.assert_array_equal(res.labels[~low], plain.labels[~low])


def test_input_size_resizes_and_maps_labels_back_with_nearest(checkpoint):
    with Segmenter(checkpoint, backend='torch', input_size=(64, 96)) as seg:
        assert seg.input_size == (64, 96)
        image = _image(120, 170, seed=3)
        res = seg.segment(image, confidence=True)
        assert res.labels.shape == (120, 170) and res.confidence.shape == (120, 170)
        small = seg.segment(_resize(image, (64, 96)))
        assert set(np.unique(res.labels)) <= set(np.unique(small.labels))


def _resize(image, size):
    import cv2
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


class _CountingBackend:
    """Counts the inference calls of a real backend (the backend still runs)."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []

    def __call__(self, batch, outputs=('logits',)):
        self.calls.append(batch.shape)
        return self.backend.__class__.infer(self.backend, batch, outputs)


def test_batch_groups_by_size_and_matches_single_calls(checkpoint):
    with Segmenter(checkpoint, backend='torch') as seg:
        a, b = _image(64, 96, seed=4), _image(32, 64, seed=5)
        singles = [seg.segment(img).labels for img in (a, b, a)]
        counter = _CountingBackend(seg.backend)
        seg.backend.infer = counter
        results = seg.segment_batch([a, b, a])
        assert sorted(counter.calls) == [(1, 3, 32, 64), (2, 3, 64, 96)]
        for res, single in zip(results, singles):
            np.testing.assert_array_equal(res.labels, single)


def test_batch_with_input_size_is_one_inference_call(checkpoint):
    with Segmenter(checkpoint, backend='torch', input_size=(32, 64)) as seg:
        counter = _CountingBackend(seg.backend)
        seg.backend.infer = counter
        images = [_image(40, 60, seed=6), _image(90, 50, seed=7)]
        results = seg.segment_batch(images, color=True)
        assert counter.calls == [(2, 3, 32, 64)]
        assert [r.labels.shape for r in results] == [(40, 60), (90, 50)]
        assert [r.color.shape for r in results] == [(40, 60, 3), (90, 50, 3)]
        assert seg.segment_batch([]) == []


def test_groups_hold_one_size_and_channel_order_smallest_first(checkpoint):
    """Cameras isolated: each call's results come as soon as it returns, smallest size first,
    so large frames never delay smaller ones segmented with them."""
    big, small_a, small_b = _image(96, 128, seed=8), _image(32, 64, seed=9), _image(32, 64, 10)
    rgb = ColorImage(np.ascontiguousarray(small_b[:, :, ::-1]), bgr=False)
    with Segmenter(checkpoint, backend='torch') as seg:
        counter = _CountingBackend(seg.backend)
        seg.backend.infer = counter
        groups = seg.segment_groups([big, small_a, rgb, small_b])
        assert counter.calls == []  # nothing runs before the caller asks for the first call
        first = next(groups)
        assert first.indices == [1, 3] and first.error is None and len(counter.calls) == 1
        rest = list(groups)
        assert [g.indices for g in rest] == [[2], [0]]
        assert counter.calls == [(2, 3, 32, 64), (1, 3, 32, 64), (1, 3, 96, 128)]
        np.testing.assert_array_equal(rest[0].results[0].labels, first.results[1].labels)
        assert [i for i, _ in first.pairs()] == [1, 3]
    with Segmenter(checkpoint, backend='torch', input_size=(32, 64)) as seg:
        # A fixed network size puts every image of one channel order into one call.
        groups = list(seg.segment_groups([big, small_a, rgb, small_b]))
        assert [g.indices for g in groups] == [[0, 1, 3], [2]]


def test_a_failed_call_yields_its_error_and_the_next_call_still_runs(segmenter):
    small = _image(32, 32, seed=11)
    huge = np.zeros((40000, 40000, 3), np.uint8)  # never touched: refused for its memory
    groups = list(segmenter.segment_groups([huge, small]))
    assert [g.indices for g in groups] == [[1], [0]]
    assert groups[0].error is None and groups[0].results[0].labels.shape == (32, 32)
    assert isinstance(groups[1].error, LimitError) and groups[1].results == []
    assert groups[1].pairs() == []
    with pytest.raises(LimitError, match='more than the'):  # segment_batch raises it
        segmenter.segment_batch([small, huge])


def test_confidence_per_image(segmenter):
    a, b = _image(32, 32, seed=12), _image(32, 32, seed=13)
    with_a, without_b = segmenter.segment_batch([a, b], confidence=[True, False])
    assert with_a.confidence is not None and without_b.confidence is None
    np.testing.assert_allclose(with_a.confidence, segmenter.segment(a, confidence=True)
                               .confidence, atol=1e-6)  # batch of 2 vs 1: float rounding
    with pytest.raises(ValueError, match='1 confidence flags for 2 images'):
        segmenter.segment_batch([a, b], confidence=[True])


@pytest.mark.parametrize('image, words', [
    (np.zeros((16, 16, 3), np.float64), 'float64'),
    (np.zeros((16, 16), np.uint8), 'rank 2'),
    (np.zeros((16, 16, 4), np.uint8), 'got 4'),
])
def test_bad_images_raise_value_error(segmenter, image, words):
    with pytest.raises(ValueError, match=words):
        segmenter.segment(image)


def test_bad_arguments_and_missing_files(segmenter, checkpoint, tmp_path):
    with pytest.raises(ValueError, match='overlay_alpha'):
        segmenter.segment(_image(8, 8), overlay=True, overlay_alpha=2.0)
    with pytest.raises(ValueError, match='confidence_threshold'):
        segmenter.segment(_image(8, 8), confidence_threshold=-0.1)
    with pytest.raises(FileNotFoundError, match='nope.pt'):
        Segmenter(tmp_path / 'nope.pt', backend='torch')
    with pytest.raises(ValueError, match='backend'):
        Segmenter(checkpoint, backend='tflite')
    with pytest.raises(ValueError, match='5 classes'):
        Segmenter(checkpoint, backend='torch', label_set='cityscapes')
    with pytest.raises(Exception, match='fp16'):
        Segmenter(checkpoint, backend='torch', precision='fp16')


def test_module_input_label_set_and_uint16_labels():
    torch.manual_seed(1)
    model = build_model('bisenetv2', 300).eval()
    seg = Segmenter(model, backend='torch')
    assert seg.label_set.num_classes == 300 and seg.backend_name == 'torch'
    res = seg.segment(_image(32, 32, seed=8), color=True)
    assert res.labels.dtype == np.uint16 and res.labels.max() < 300
    seg.close()
    with pytest.raises(RuntimeError, match='closed'):
        seg.segment(_image(32, 32))


def test_reference_checkpoint_defaults_to_cityscapes_and_logs_auto(reference_fixture, caplog):
    caplog.set_level(logging.INFO)
    with Segmenter(reference_fixture / 'city19_seed0.pth', backend='auto') as seg:
        assert seg.label_set == load_label_set('cityscapes')
        assert seg.backend_name in ('onnxruntime', 'torch')
        res = seg.segment(_image(64, 128, seed=9))
        assert res.labels.shape == (64, 128) and res.labels.max() < 19
    assert 'backend auto ->' in caplog.text


def test_segment_cli_writes_label_color_and_overlay_pngs(checkpoint, tmp_path, capsys):
    import cv2

    from bisenet_ros.cli import SUBCOMMANDS
    assert SUBCOMMANDS['segment'][0] == 'bisenet_ros.tools.segment_image'
    image = _image(48, 80, seed=10)
    cv2.imwrite(str(tmp_path / 'frame.png'), image)
    out = tmp_path / 'out'
    assert _run_tool([str(tmp_path / 'frame.png'), '--model', str(checkpoint),
                      '--backend', 'torch', '--output-dir', str(out)]) == 0
    labels = cv2.imread(str(out / 'frame_labels.png'), cv2.IMREAD_UNCHANGED)
    color = cv2.imread(str(out / 'frame_color.png'), cv2.IMREAD_COLOR)
    overlay = cv2.imread(str(out / 'frame_overlay.png'), cv2.IMREAD_COLOR)
    with Segmenter(checkpoint, backend='torch') as seg:
        expected = seg.segment(image, color=True)
    np.testing.assert_array_equal(labels, expected.labels)
    np.testing.assert_array_equal(color[:, :, ::-1], expected.color)
    assert overlay.shape == (48, 80, 3)
    assert 'frame.png' in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        _run_tool([str(tmp_path / 'frame.png'), '--model', str(tmp_path / 'missing.pt')])


def _run_tool(argv):
    import argparse

    from bisenet_ros.tools import segment_image
    parser = argparse.ArgumentParser()
    segment_image.add_arguments(parser)
    return segment_image.run(parser.parse_args(argv))
