"""Fuzzing the pure image conversions: any message either converts or raises ConversionError."""

from types import SimpleNamespace

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np

from bisenet_ros.image_conversions import (compressed_to_color, ConversionError,
                                           image_to_color, supported_encodings)

ENCODINGS = st.one_of(st.sampled_from(supported_encodings()),
                      st.sampled_from(['', 'jpeg', 'bgr8 ', 'BGR8', '16SC3', 'bayer_xyz8',
                                       'bayer_rggb32', 'yuv420', 'nv12']),
                      st.text(max_size=12))
SIZES = st.integers(min_value=-3, max_value=40) | st.sampled_from([2 ** 31, 10 ** 12])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=SIZES, width=SIZES, step=SIZES | st.integers(0, 400), encoding=ENCODINGS,
       big=st.booleans(), data=st.binary(max_size=4000))
def test_image_to_color_converts_or_raises_conversion_error(height, width, step, encoding, big,
                                                            data):
    msg = SimpleNamespace(height=height, width=width, step=step, encoding=encoding,
                          is_bigendian=big, data=data)
    try:
        pixels = image_to_color(msg).pixels
    except ConversionError as exc:
        assert str(exc)  # every refusal says why
        return
    assert pixels.shape == (height, width, 3) and pixels.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(fmt=st.sampled_from(['jpeg', 'png', 'rgb8; jpeg compressed bgr8', '']),
       data=st.binary(max_size=2000))
def test_compressed_to_color_decodes_or_raises_conversion_error(fmt, data):
    try:
        image = compressed_to_color(SimpleNamespace(format=fmt, data=data))
        pixels, is_bgr = image.pixels, image.bgr
    except ConversionError:
        return
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and is_bgr


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(min_value=1, max_value=400), flip=st.integers(min_value=0, max_value=399))
def test_corrupted_jpeg_never_escapes_as_another_error(cut, flip):
    import cv2
    ok, encoded = cv2.imencode('.jpg', np.full((16, 24, 3), 127, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    data = data[:max(1, len(data) - cut)]
    data[flip % len(data)] ^= 0xFF
    try:
        pixels = compressed_to_color(SimpleNamespace(format='jpeg', data=bytes(data))).pixels
    except ConversionError:
        return
    assert pixels.shape[2] == 3
