"""Tests for bisenet_ros.inference.postprocess: argmax, confidence, resize, colour, overlay."""

import numpy as np
import pytest

from bisenet_ros.inference.postprocess import (apply_threshold, argmax_labels, blend_overlay,
                                               colorize_labels, label_dtype, max_softmax,
                                               resize_confidence, resize_labels)


def test_argmax_labels_matches_numpy_including_ties():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 7, 13, 17)).astype(np.float32)
    logits[0, 3, 0, 0] = logits[0, 5, 0, 0] = 50.0  # tie: lowest id wins, as np.argmax
    labels = argmax_labels(logits)
    assert labels.dtype == np.uint8 and labels.shape == (2, 13, 17)
    np.testing.assert_array_equal(labels, logits.argmax(axis=1))
    assert labels[0, 0, 0] == 3


def test_argmax_labels_uses_uint16_beyond_255_classes():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 300, 4, 5)).astype(np.float32)
    labels = argmax_labels(logits)
    assert labels.dtype == np.uint16
    np.testing.assert_array_equal(labels[0], logits[0].argmax(axis=0))


def test_label_dtype_accounts_for_the_ignore_id():
    assert label_dtype(19, 255) == np.uint8
    assert label_dtype(256) == np.uint8
    assert label_dtype(257) == np.uint16
    assert label_dtype(11, 1000) == np.uint16


def test_max_softmax_is_the_top_probability():
    rng = np.random.default_rng(2)
    logits = (rng.normal(size=(1, 5, 6, 7)) * 10).astype(np.float32)
    conf = max_softmax(logits)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert conf.dtype == np.float32 and conf.shape == (1, 6, 7)
    np.testing.assert_allclose(conf, probs.max(1), rtol=1e-6)
    assert conf.min() >= 1 / 5 - 1e-6 and conf.max() <= 1.0


def test_resize_labels_is_nearest_and_never_invents_ids():
    labels = np.array([[0, 10], [200, 255]], np.uint8)
    big = resize_labels(labels, (64, 96))
    assert big.dtype == np.uint8 and big.shape == (64, 96)
    assert set(np.unique(big)) == {0, 10, 200, 255}
    assert big[0, 0] == 0 and big[0, -1] == 10 and big[-1, 0] == 200 and big[-1, -1] == 255
    wide = resize_labels(np.array([[0, 300]], np.uint16), (3, 7))
    assert wide.dtype == np.uint16 and set(np.unique(wide)) == {0, 300}
    assert resize_labels(labels, (2, 2)) is labels


def test_resize_confidence_stays_in_unit_range():
    conf = np.array([[0.0, 1.0], [1.0, 0.5]], np.float32)
    out = resize_confidence(conf, (9, 11))
    assert out.shape == (9, 11) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_apply_threshold_marks_low_confidence_as_ignore():
    labels = np.array([[1, 2], [3, 4]], np.uint8)
    conf = np.array([[0.9, 0.2], [0.5, 0.49]], np.float32)
    out = apply_threshold(labels.copy(), conf, 0.5, 255)
    np.testing.assert_array_equal(out, [[1, 255], [3, 255]])
    np.testing.assert_array_equal(apply_threshold(labels.copy(), conf, 0.0, 255), labels)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int64])
def test_colorize_labels_is_a_palette_lookup_that_clips_large_ids(dtype):
    rng = np.random.default_rng(1)
    palette = rng.integers(0, 256, (200, 3), np.uint8)
    labels = rng.integers(0, 256, (37, 53)).astype(dtype)  # ids >= 200: the last colour
    labels[0, :4] = [0, 199, 255, 0]
    if dtype != np.uint8:
        labels[1, 0] = 1000
    color = colorize_labels(labels, palette)
    assert color.shape == (37, 53, 3) and color.dtype == np.uint8 and color.flags.c_contiguous
    np.testing.assert_array_equal(color, np.take(palette, labels, axis=0, mode='clip'))


def test_colorize_and_overlay_follow_the_image_channel_order():
    palette = np.zeros((256, 3), np.uint8)
    palette[1] = (255, 0, 0)  # RGB red
    labels = np.array([[0, 1]], np.uint8)
    color = colorize_labels(labels, palette)
    np.testing.assert_array_equal(color, [[[0, 0, 0], [255, 0, 0]]])
    image_bgr = np.full((1, 2, 3), 100, np.uint8)
    full = blend_overlay(image_bgr, color, 1.0, bgr=True)
    np.testing.assert_array_equal(full[0, 1], [0, 0, 255])  # red in BGR
    np.testing.assert_array_equal(blend_overlay(image_bgr, color, 1.0, bgr=False)[0, 1],
                                  [255, 0, 0])
    np.testing.assert_array_equal(blend_overlay(image_bgr, color, 0.0, bgr=True), image_bgr)
    half = blend_overlay(image_bgr, color, 0.5, bgr=True)
    np.testing.assert_allclose(half[0, 1].astype(int), [50, 50, 178], atol=1)
    with pytest.raises(ValueError, match='overlay_alpha'):
        blend_overlay(image_bgr, color, 1.5, bgr=True)


@pytest.mark.parametrize('bgr', [True, False])
@pytest.mark.parametrize('out_bgr', [True, False])
def test_overlay_in_a_chosen_channel_order_equals_the_blend_of_the_reordered_image(bgr, out_bgr):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # in the order bgr says
    color = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # RGB
    reordered = image if bgr == out_bgr else np.ascontiguousarray(image[:, :, ::-1])
    out = blend_overlay(image, color, 0.3, bgr, out_bgr=out_bgr)
    np.testing.assert_array_equal(out, blend_overlay(reordered, color, 0.3, out_bgr))
    assert out.flags.c_contiguous
    strided = np.concatenate([image, image[:, :, :1]], axis=2)[:, :, :3]  # rgba8 without alpha
    np.testing.assert_array_equal(blend_overlay(strided, color, 0.3, bgr, out_bgr=out_bgr), out)
