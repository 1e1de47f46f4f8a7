"""Image <-> ndarray conversions: encodings, row padding, byte order, refusals, round trips."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from bisenet_ros.image_conversions import (array_to_image_fields, compressed_to_color,
                                           confidence_to_mono8,
                                           ConversionError, fill_image, image_to_array,
                                           image_to_color)

RNG = np.random.default_rng(0)
H, W = 6, 10


def make_msg(array, encoding, step=None, bigendian=False, pad_value=7):
    """An Image-like object holding ``array`` with optional row padding and byte order."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder('>' if bigendian else '<')
    rows = array.astype(dtype).reshape(array.shape[0], -1).view(np.uint8)
    row_bytes = rows.shape[1]
    step = row_bytes if step is None else step
    padded = np.full((array.shape[0], step), pad_value, np.uint8)
    padded[:, :row_bytes] = rows
    return SimpleNamespace(height=array.shape[0], width=array.shape[1], encoding=encoding,
                           is_bigendian=int(bigendian), step=step, data=padded.tobytes())


@pytest.mark.parametrize('encoding,channels,is_bgr', [
    ('bgr8', 3, True), ('rgb8', 3, False), ('bgra8', 4, True), ('rgba8', 4, False)])
@pytest.mark.parametrize('pad', [0, 6])
def test_color_encodings_keep_channel_order_and_drop_alpha(encoding, channels, is_bgr, pad):
    pixels = RNG.integers(0, 256, (H, W, channels), dtype=np.uint8)
    msg = make_msg(pixels, encoding, step=W * channels + pad)
    image = image_to_color(msg)
    color, bgr = image.pixels, image.bgr
    assert bgr is is_bgr
    assert color.shape == (H, W, 3) and color.dtype == np.uint8
    np.testing.assert_array_equal(color, pixels[:, :, :3])


def test_mono8_is_replicated_to_three_channels():
    pixels = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    image = image_to_color(make_msg(pixels, 'mono8', step=W + 3))
    color, bgr = image.pixels, image.bgr
    assert bgr
    for c in range(3):
        np.testing.assert_array_equal(color[:, :, c], pixels)


@pytest.mark.parametrize('bigendian', [False, True])
def test_mono16_honours_byte_order_and_scales_to_8_bit(bigendian):
    pixels = np.array([[0, 257, 65535, 32896, 1000]], np.uint16)
    msg = make_msg(pixels, 'mono16', step=14, bigendian=bigendian)
    np.testing.assert_array_equal(image_to_array(msg), pixels)
    color = image_to_color(msg).pixels
    np.testing.assert_array_equal(color[0, :, 0], [0, 1, 255, 128, 4])


def test_rgb16_big_endian():
    pixels = RNG.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    msg = make_msg(pixels, 'rgb16', bigendian=True)
    np.testing.assert_array_equal(image_to_array(msg), pixels)
    image = image_to_color(msg)
    color, bgr = image.pixels, image.bgr
    assert not bgr
    np.testing.assert_array_equal(color, np.round(pixels / 65535 * 255).astype(np.uint8))


@pytest.mark.parametrize('encoding', ['yuv422', 'yuv422_yuy2'])
def test_yuv422_uniform_colour(encoding):
    # yuv422 is UYVY, yuv422_yuy2 is YUYV; BT.601 video range, so U/V order matters.
    y, u, v = 120, 90, 160
    pair = [u, y, v, y] if encoding == 'yuv422' else [y, u, y, v]
    raw = np.tile(np.array(pair, np.uint8), (H, W // 2)).reshape(H, W, 2)
    image = image_to_color(make_msg(raw, encoding, step=W * 2 + 4))
    color, bgr = image.pixels, image.bgr
    luma = 1.164 * (y - 16)
    expected = [luma + 2.018 * (u - 128), luma - 0.813 * (v - 128) - 0.391 * (u - 128),
                luma + 1.596 * (v - 128)]
    assert bgr and color.shape == (H, W, 3)
    assert np.abs(color.astype(float) - expected).max() <= 2


@pytest.mark.parametrize('encoding', ['yuv422', 'yuv422_yuy2'])
def test_yuv422_odd_width_is_a_conversion_error(encoding):
    # OpenCV raised cv2.error here (found by test_fuzz_conversions)
    raw = np.zeros((4, 5, 2), np.uint8)
    with pytest.raises(ConversionError, match='width must be even'):
        image_to_color(make_msg(raw, encoding))


@pytest.mark.parametrize('pattern', ['rggb', 'bggr', 'gbrg', 'grbg'])
def test_bayer_patterns_demosaic_to_the_right_colour(pattern):
    rgb = np.array([200, 100, 30])  # a uniform scene
    index = {'r': 0, 'g': 1, 'b': 2}
    mosaic = np.zeros((8, 8), np.uint8)
    for (dy, dx), ch in zip([(0, 0), (0, 1), (1, 0), (1, 1)], pattern):
        mosaic[dy::2, dx::2] = rgb[index[ch]]
    image = image_to_color(make_msg(mosaic, f'bayer_{pattern}8'))
    color, bgr = image.pixels, image.bgr
    assert bgr
    np.testing.assert_array_equal(color[4, 4], rgb[::-1])
    color16 = image_to_color(make_msg(mosaic.astype(np.uint16) * 257,
                                      f'bayer_{pattern}16')).pixels
    np.testing.assert_array_equal(color16[4, 4], rgb[::-1])


@pytest.mark.parametrize('msg,words', [
    (SimpleNamespace(height=2, width=2, encoding='jpeg', is_bigendian=0, step=6,
                     data=bytes(12)), ["'jpeg'", '2x2']),
    (SimpleNamespace(height=4, width=5, encoding='bgr8', is_bigendian=0, step=15,
                     data=bytes(40)), ['bgr8', '40 bytes', '60']),
    (SimpleNamespace(height=4, width=5, encoding='rgb8', is_bigendian=0, step=10,
                     data=bytes(60)), ['step 10', '15 bytes']),
    (SimpleNamespace(height=0, width=5, encoding='rgb8', is_bigendian=0, step=15,
                     data=b''), ['empty']),
    (SimpleNamespace(height=2, width=2, encoding='32FC1', is_bigendian=0, step=8,
                     data=bytes(16)), ['32FC1']),
])
def test_bad_images_raise_one_error_type_naming_the_problem(msg, words):
    with pytest.raises(ConversionError) as info:
        image_to_color(msg)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize('encoding,dtype,shape', [
    ('mono8', np.uint8, (H, W)), ('mono16', np.uint16, (H, W)), ('rgb8', np.uint8, (H, W, 3)),
    ('bgr8', np.uint8, (H, W, 3)), ('32FC1', np.float32, (H, W))])
def test_array_to_image_round_trip(encoding, dtype, shape):
    array = (RNG.random(shape) * 1000).astype(dtype)
    fields = array_to_image_fields(array, encoding)
    assert isinstance(fields['data'], bytes)
    assert fields['step'] * fields['height'] == len(fields['data'])
    msg = fill_image(SimpleNamespace(), array, encoding)
    np.testing.assert_array_equal(image_to_array(msg), array)


def test_array_to_image_refuses_mismatched_arrays():
    with pytest.raises(ConversionError, match=r"'mono8' needs a uint8 array of \(H, W\)"):
        array_to_image_fields(np.zeros((H, W), np.uint16), 'mono8')
    with pytest.raises(ConversionError, match='yuv422'):
        array_to_image_fields(np.zeros((H, W), np.uint8), 'yuv422')


def test_real_sensor_msgs_image_round_trip():
    from sensor_msgs.msg import Image
    pixels = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    msg = fill_image(Image(), pixels, 'rgb8')
    image = image_to_color(msg)
    color, bgr = image.pixels, image.bgr
    assert not bgr
    np.testing.assert_array_equal(color, pixels)


@pytest.mark.parametrize('ext', ['.png', '.jpg'])
def test_compressed_decode(ext):
    pixels = np.zeros((H * 4, W * 4, 3), np.uint8)
    pixels[:, :, 0] = 40
    pixels[:, :, 2] = 220
    ok, buf = cv2.imencode(ext, pixels)
    assert ok
    image = compressed_to_color(SimpleNamespace(format=ext[1:], data=buf.tobytes()))
    color, bgr = image.pixels, image.bgr
    assert bgr and color.shape == pixels.shape
    assert np.abs(color.astype(int) - pixels).max() <= 3


def test_compressed_garbage_is_refused():
    with pytest.raises(ConversionError, match="format 'jpeg', 5 bytes"):
        compressed_to_color(SimpleNamespace(format='jpeg', data=b'hello'))


def test_confidence_to_mono8_scales_rounds_and_clips():
    conf = np.array([[0.0, 1.0, 0.5, 0.25], [-0.1, 1.2, np.nan, 2 / 255]], np.float32)
    out = confidence_to_mono8(conf)
    assert out.dtype == np.uint8 and out.shape == conf.shape
    assert out.tolist() == [[0, 255, 128, 64], [0, 255, 0, 2]]
