"""Tests for bisenet_ros.preprocess: normalisation, resize, batching, channel order per image."""

import numpy as np
import pytest

from bisenet_ros.images import ColorImage
from bisenet_ros.preprocess import Geometry, preprocess

MEAN = (0.3257, 0.3690, 0.3223)
STD = (0.2112, 0.2148, 0.2115)


def _expected(rgb: np.ndarray) -> np.ndarray:
    x = (rgb.astype(np.float64) / 255.0 - np.array(MEAN)) / np.array(STD)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def test_bgr_image_is_normalised_in_rgb_order():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    batch, geos = preprocess([np.ascontiguousarray(rgb[:, :, ::-1])], MEAN, STD, bgr=True)
    assert batch.dtype == np.float32 and batch.shape == (1, 3, 37, 53)
    assert batch.flags.c_contiguous
    np.testing.assert_allclose(batch, _expected(rgb), rtol=1e-5, atol=1e-5)
    assert geos == [Geometry((37, 53), (37, 53))] and not geos[0].resized


def test_rgb_flag_gives_the_same_tensor_as_bgr_of_the_swapped_image():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    from_rgb, _ = preprocess([rgb], MEAN, STD, bgr=False)
    from_bgr, _ = preprocess([rgb[:, :, ::-1]], MEAN, STD, bgr=True)  # non-contiguous view
    np.testing.assert_array_equal(from_rgb, from_bgr)


def test_color_images_bring_their_own_channel_order_into_one_batch():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    as_rgb, as_bgr = ColorImage(rgb, bgr=False), ColorImage(rgb[:, :, ::-1], bgr=True)
    batch, _ = preprocess([as_rgb, as_bgr, rgb[:, :, ::-1]], MEAN, STD, bgr=True)
    np.testing.assert_array_equal(batch[0], batch[1])  # bgr= is for the plain array only
    np.testing.assert_array_equal(batch[0], batch[2])
    np.testing.assert_allclose(batch[:1], _expected(rgb), rtol=1e-5, atol=1e-5)


def test_input_size_resizes_bilinearly_and_records_geometry():
    import cv2
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    batch, geos = preprocess([rgb], MEAN, STD, bgr=False, input_size=(32, 64))
    assert batch.shape == (1, 3, 32, 64)
    assert geos[0].original_size == (48, 80) and geos[0].network_size == (32, 64)
    assert geos[0].resized
    resized = cv2.resize(rgb, (64, 32), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(batch, _expected(resized), rtol=1e-5, atol=1e-5)


def test_different_sizes_share_a_batch_only_with_input_size():
    a = np.zeros((10, 20, 3), np.uint8)
    b = np.full((30, 10, 3), 255, np.uint8)
    with pytest.raises(ValueError, match='different sizes'):
        preprocess([a, b], MEAN, STD)
    batch, geos = preprocess([a, b, a], MEAN, STD, input_size=(16, 16))
    assert batch.shape == (3, 3, 16, 16)
    assert [g.original_size for g in geos] == [(10, 20), (30, 10), (10, 20)]
    np.testing.assert_array_equal(batch[0], batch[2])
    np.testing.assert_allclose(batch[1, :, 0, 0], (1 - np.array(MEAN)) / np.array(STD),
                               rtol=1e-5)


@pytest.mark.parametrize('image, words', [
    (np.zeros((8, 8, 3), np.float32), 'image 0: expected dtype uint8, got float32'),
    (np.zeros((8, 8), np.uint8), 'image 0: expected rank 3'),
    ([[1, 2, 3]], 'image 0: expected a numpy array'),
])
def test_a_bad_plain_image_is_refused_naming_its_position(image, words):
    with pytest.raises(ValueError, match=words):
        preprocess([image], MEAN, STD)


@pytest.mark.parametrize('size', [(0, 10), (10,), (1.5, 2), 'ab'])
def test_bad_input_size_is_rejected(size):
    with pytest.raises(ValueError, match='input_size'):
        preprocess([np.zeros((4, 4, 3), np.uint8)], MEAN, STD, input_size=size)


def test_empty_list_is_rejected():
    with pytest.raises(ValueError, match='no images'):
        preprocess([], MEAN, STD)
