"""Tests for bisenet_ros.images: the validated colour image and its channel order."""

import dataclasses

import numpy as np
import pytest

from bisenet_ros.images import as_color_image, check_image, ColorImage, reverse_channels


@pytest.mark.parametrize('image, words', [
    (np.zeros((8, 8, 3), np.float32), ['uint8', 'float32']),
    (np.zeros((8, 8), np.uint8), ['rank 2', '(8, 8)']),
    (np.zeros((8, 8, 4), np.uint8), ['3 channels', 'got 4']),
    (np.zeros((2, 8, 8, 3), np.uint8), ['rank 4']),
    (np.zeros((0, 8, 3), np.uint8), ['empty']),
    ([[1, 2, 3]], ['numpy array', 'list']),
])
def test_bad_images_raise_value_error_saying_what_arrived(image, words):
    with pytest.raises(ValueError) as info:
        check_image(image)
    for word in words:
        assert word in str(info.value)
    with pytest.raises(ValueError) as made:  # a ColorImage cannot be made from it either
        ColorImage(image, what='camera 2')
    assert str(made.value).startswith('camera 2: ')
    for word in words:
        assert word in str(made.value)


def test_a_color_image_keeps_its_order_and_converts_to_bgr_once():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image = ColorImage(rgb, bgr=False)
    assert image.size == (2, 3) and image.bgr is False
    bgr = image.to_bgr()
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])
    assert bgr.flags.c_contiguous
    already = ColorImage(bgr)
    assert already.bgr is True and already.to_bgr() is bgr  # no copy when already BGR
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.bgr = True
    with pytest.raises(ValueError, match='bgr must be a bool'):
        ColorImage(rgb, 'rgb')


def test_as_color_image_passes_a_color_image_through_and_checks_an_array():
    rgb = np.zeros((4, 5, 3), np.uint8)
    made = ColorImage(rgb, bgr=False)
    assert as_color_image(made, bgr=True) is made  # its own order wins, not checked again
    tagged = as_color_image(rgb, bgr=False)
    assert tagged.pixels is rgb and tagged.bgr is False
    with pytest.raises(ValueError, match='image 3: expected dtype uint8'):
        as_color_image(rgb.astype(np.float32), what='image 3')


def test_reverse_channels_swaps_rgb_and_bgr_for_any_view():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (6, 9, 4), np.uint8)
    views = {'contiguous': np.ascontiguousarray(rgba[:, :, :3]),
             'cropped rows': np.ascontiguousarray(rgba[:, :, :3])[1:5, 2:7],
             'every other pixel': np.ascontiguousarray(rgba[:, :, :3])[:, ::2],
             'three of four channels': rgba[:, :, :3],
             'flipped': np.ascontiguousarray(rgba[:, :, :3])[::-1]}
    for name, view in views.items():
        out = reverse_channels(view)
        assert out.flags.c_contiguous, name
        np.testing.assert_array_equal(out, view[:, :, ::-1], err_msg=name)
    with pytest.raises(ValueError, match=r'reverse_channels: expected 3 channels .* got 4'):
        reverse_channels(rgba)
