"""``sensor_msgs`` Image / CompressedImage <-> numpy arrays, in plain numpy and OpenCV.

No rclpy import: every function takes the message's fields or any object with the fields of
``sensor_msgs/msg/Image`` (``height, width, encoding, is_bigendian, step, data``) or
``sensor_msgs/msg/CompressedImage`` (``format, data``). Row padding (``step``) and byte order
(``is_bigendian``) are honoured. Every unusable input raises :class:`ConversionError`, whose
message names the encoding and the sizes that do not fit, cut to
:data:`~bisenet_ros.limits.MAX_REASON_CHARS` characters (a message's strings are untrusted).

:func:`decode_encoded` is the one way the package decodes an encoded image (node input, CLI
images, dataset images and labels, bag images and labels, calibration images).
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Tuple

import numpy as np

from .image_header import encoded_size, HeaderError
from .images import ColorImage
from .limits import (check_pixels, DECODER_MAX_PIXELS, DEFAULT_MAX_INPUT_PIXELS, LimitError,
                     MAX_REASON_CHARS, shorten)

#: encoding -> (element dtype, channels) for the encodings read as plain arrays.
PLAIN_ENCODINGS: Dict[str, Tuple[str, int]] = {
    'bgr8': ('u1', 3), 'rgb8': ('u1', 3), 'bgra8': ('u1', 4), 'rgba8': ('u1', 4),
    'mono8': ('u1', 1), '8UC1': ('u1', 1), '8UC3': ('u1', 3), '8UC4': ('u1', 4),
    'mono16': ('u2', 1), '16UC1': ('u2', 1), 'bgr16': ('u2', 3), 'rgb16': ('u2', 3),
    'bgra16': ('u2', 4), 'rgba16': ('u2', 4), '32FC1': ('f4', 1),
}
#: YUV 4:2:2 encodings (2 bytes per pixel) -> name of the OpenCV conversion to BGR.
YUV_ENCODINGS = {'yuv422': 'COLOR_YUV2BGR_UYVY', 'uyvy': 'COLOR_YUV2BGR_UYVY',
                 'yuv422_yuy2': 'COLOR_YUV2BGR_YUY2', 'yuyv': 'COLOR_YUV2BGR_YUY2'}
#: Bayer pattern (as named by ROS: the first two rows) -> OpenCV conversion to BGR. OpenCV's
#: historic names use the second row, so ROS 'rggb' is OpenCV 'BG' (pinned by a test).
BAYER_CODES = {'rggb': ('COLOR_BayerRGGB2BGR', 'COLOR_BayerBG2BGR'),
               'bggr': ('COLOR_BayerBGGR2BGR', 'COLOR_BayerRG2BGR'),
               'gbrg': ('COLOR_BayerGBRG2BGR', 'COLOR_BayerGR2BGR'),
               'grbg': ('COLOR_BayerGRBG2BGR', 'COLOR_BayerGB2BGR')}
#: Encodings that :func:`array_to_image_fields` writes -> (dtype, channels).
WRITABLE_ENCODINGS = {'mono8': ('u1', 1), 'mono16': ('u2', 1), '16UC1': ('u2', 1),
                      'rgb8': ('u1', 3), 'bgr8': ('u1', 3), '32FC1': ('f4', 1)}


class ConversionError(ValueError):
    """An image cannot be converted; the message names the encoding and the sizes (at most
    :data:`~bisenet_ros.limits.MAX_REASON_CHARS` characters)."""

    def __init__(self, message: Any) -> None:
        super().__init__(shorten(message, MAX_REASON_CHARS))


def supported_encodings() -> Tuple[str, ...]:
    """Every Image encoding :func:`image_to_color` accepts."""
    bayer = [f'bayer_{p}{bits}' for p in BAYER_CODES for bits in (8, 16)]
    return tuple(PLAIN_ENCODINGS) + tuple(YUV_ENCODINGS) + tuple(bayer)


def _byte_view(data: Any) -> np.ndarray:
    """A flat uint8 view of ``data`` (bytes, array.array('B'), memoryview, ndarray or list)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, np.uint8)
    return np.frombuffer(data, np.uint8)


def _rows(data: Any, height: int, width: int, step: int, row_bytes: int,
          encoding: str) -> np.ndarray:
    """``(height, row_bytes)`` uint8 view of the pixel rows, padding dropped (no copy)."""
    where = f"image {width}x{height} encoding '{encoding}'"
    if height <= 0 or width <= 0:
        raise ConversionError(f'{where}: empty image')
    if step < row_bytes:
        raise ConversionError(f'{where}: step {step} is smaller than the {row_bytes} bytes '
                              'one row needs')
    buf = _byte_view(data)
    needed = step * (height - 1) + row_bytes
    if buf.size < needed:
        raise ConversionError(f'{where}, step {step}: data has {buf.size} bytes, '
                              f'expected at least {needed}')
    if buf.size < step * height:  # last row unpadded: view through a strided window
        return np.lib.stride_tricks.as_strided(buf, (height, row_bytes), (step, 1),
                                               writeable=False)
    return buf[:step * height].reshape(height, step)[:, :row_bytes]


def image_fields_to_array(height: int, width: int, encoding: str, is_bigendian: bool,
                          step: int, data: Any) -> np.ndarray:
    """Pixels of an Image in their own encoding: ``(H, W)`` or ``(H, W, C)``.

    dtype: uint8 for 8-bit, uint16 (native byte order) for 16-bit, float32 for ``32FC1``;
    YUV 4:2:2 comes as ``(H, W, 2)`` uint8 and Bayer as ``(H, W)``. The result may be a
    read-only view of ``data``.
    """
    if encoding in PLAIN_ENCODINGS:
        kind, channels = PLAIN_ENCODINGS[encoding]
    elif encoding in YUV_ENCODINGS:
        kind, channels = 'u1', 2
    elif encoding.startswith('bayer_') and encoding[6:10] in BAYER_CODES \
            and encoding[10:] in ('8', '16'):
        kind, channels = ('u1' if encoding.endswith('8') else 'u2'), 1
    else:
        raise ConversionError(f"image {width}x{height}: unsupported encoding '{encoding}'; "
                              f'supported: {", ".join(supported_encodings())}')
    dtype = np.dtype(('>' if is_bigendian else '<') + kind)
    rows = _rows(data, int(height), int(width), int(step),
                 int(width) * channels * dtype.itemsize, encoding)
    pixels = np.ascontiguousarray(rows).view(dtype)
    if not dtype.isnative:
        pixels = pixels.astype(dtype.newbyteorder('='))
    shape = (int(height), int(width)) if channels == 1 else (int(height), int(width), channels)
    return pixels.reshape(shape)


def image_to_array(msg: Any) -> np.ndarray:
    """:func:`image_fields_to_array` for an Image-like object."""
    return image_fields_to_array(msg.height, msg.width, msg.encoding, bool(msg.is_bigendian),
                                 msg.step, msg.data)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16-bit (full range 0..65535) to 8-bit; 8-bit passes through."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ConversionError(f'cannot show {pixels.dtype} pixels as a colour image')


def image_to_color(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> ColorImage:
    """An Image-like object as a colour image for segmentation.

    ``width x height`` above ``max_pixels`` (0: no bound) is refused before any pixel is read.

    Returns:
        ``(H, W, 3)`` uint8 pixels with their channel order: rgb inputs stay RGB (``bgr``
        False) so no channel swap is spent; every other encoding comes as BGR. 16-bit inputs
        are scaled from 0..65535 to 0..255; alpha is dropped; mono is replicated into 3
        channels; YUV 4:2:2 and Bayer are converted with OpenCV.
    """
    encoding = msg.encoding
    try:
        check_pixels(int(msg.width), int(msg.height), max_pixels, f"image '{encoding}'")
    except LimitError as exc:
        raise ConversionError(str(exc)) from None
    pixels = image_to_array(msg)
    if encoding == '32FC1':
        raise ConversionError(f"image {msg.width}x{msg.height}: encoding '32FC1' (float) "
                              'cannot be segmented; expected a colour, mono, YUV or Bayer image')
    if encoding in YUV_ENCODINGS:
        if pixels.shape[1] % 2:
            raise ConversionError(f"image {msg.width}x{msg.height}: encoding '{encoding}' packs "
                                  'two pixels per 4 bytes, so the width must be even')
        import cv2
        return ColorImage(cv2.cvtColor(pixels, getattr(cv2, YUV_ENCODINGS[encoding])))
    if encoding.startswith('bayer_'):
        import cv2
        new, old = BAYER_CODES[encoding[6:10]]
        code = getattr(cv2, new, None)
        code = getattr(cv2, old) if code is None else code
        return ColorImage(_to_uint8(cv2.cvtColor(np.ascontiguousarray(pixels), code)))
    pixels = _to_uint8(pixels)
    if pixels.ndim == 2:
        return ColorImage(np.repeat(pixels[:, :, None], 3, axis=2))
    return ColorImage(pixels[:, :, :3], not encoding.startswith('rgb'))


def compressed_to_color(msg: Any, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> ColorImage:
    """A CompressedImage-like object (jpeg or png) as a BGR colour image, through
    :func:`decode_encoded` (``max_pixels``: 0 is the decoder's ceiling)."""
    fmt = shorten(getattr(msg, 'format', ''), 40)
    size = len(msg.data)
    return ColorImage(decode_encoded(msg.data, max_pixels,
                                     f"compressed image (format '{fmt}', {size} bytes)"))


def decode_encoded(data: Any, max_pixels: int, what: str, labels: bool = False) -> np.ndarray:
    """Decode the encoded image ``data`` (bytes-like) with OpenCV: ``(H, W, 3)`` uint8 BGR, or
    with ``labels`` the ``(H, W)`` uint8 single channel of a label image.

    The size is bounded by ``max_pixels`` (see :func:`~bisenet_ros.limits.pixel_bound`) from
    one source of truth, the decoder's own reading of the file, in three steps:

    1. the size read from the header (:mod:`bisenet_ros.image_header`) must fit, or nothing is
       decoded: the cheap refusal of honest oversized files;
    2. the decoder refuses by itself any image its own header parse finds over
       :data:`~bisenet_ros.limits.DECODER_MAX_PIXELS` (OpenCV's ``OPENCV_IO_MAX_IMAGE_PIXELS``,
       which the package sets before OpenCV loads): a file whose header this module and the
       decoder read differently (a PNM comment, a TIFF or WebP trick) costs at most that
       ceiling, never 20000x20000;
    3. the decoded array, which cannot disagree with the decoder, must have the header's size
       (EXIF rotation allowed) and fit ``max_pixels``; else it is refused, not segmented.

    Every refusal is a :class:`ConversionError` starting with ``what``.
    """
    import cv2
    buf = _byte_view(data)
    where = what
    if buf.size == 0:
        raise ConversionError(f'{what}: no data')
    try:
        width, height = encoded_size(buf)
        check_pixels(width, height, max_pixels, where)
    except HeaderError as exc:
        raise ConversionError(f'{where}: {exc}') from None
    except LimitError as exc:
        raise ConversionError(str(exc)) from None
    try:
        pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED if labels else cv2.IMREAD_COLOR)
    except cv2.error:
        raise ConversionError(f'{where}: refused by the decoder (malformed, or over its ceiling '
                              f'of {DECODER_MAX_PIXELS} pixels)') from None
    if pixels is None:
        raise ConversionError(f'{where}: not a decodable image')
    got = pixels.shape[1], pixels.shape[0]
    if sorted(got) != sorted((width, height)):
        raise ConversionError(f'{where}: the header says {width}x{height} but it decodes to '
                              f'{got[0]}x{got[1]}; refused')
    if labels and (pixels.ndim != 2 or pixels.dtype != np.uint8):
        raise ConversionError(f'{where}: a label image must be single-channel 8-bit class '
                              f'ids, got shape {pixels.shape} {pixels.dtype}')
    return pixels


def image_fields_and_pixels(array: np.ndarray, encoding: str) -> Tuple[Dict[str, Any], np.ndarray]:
    """Image fields but ``data`` (``height, width, encoding, is_bigendian, step``) for
    ``array``, and the pixels that are its ``data``: C-contiguous, native byte order (a view of
    ``array`` when it already is one, no copy).

    ``encoding`` is one of mono8 / mono16 / rgb8 / bgr8 / 32FC1, and ``array`` must have the
    matching dtype and shape ((H, W) or (H, W, 3)).
    """
    if encoding not in WRITABLE_ENCODINGS:
        raise ConversionError(f"cannot write encoding '{encoding}'; writable: "
                              f'{", ".join(WRITABLE_ENCODINGS)}')
    kind, channels = WRITABLE_ENCODINGS[encoding]
    array = np.asarray(array)
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels) \
            or array.dtype.kind != np.dtype(kind).kind \
            or array.dtype.itemsize != np.dtype(kind).itemsize:
        raise ConversionError(f"encoding '{encoding}' needs a {np.dtype(kind).name} array of "
                              f"{'(H, W)' if channels == 1 else '(H, W, 3)'}, got "
                              f'{array.dtype.name} {array.shape}')
    native = np.ascontiguousarray(array.astype(array.dtype.newbyteorder('='), copy=False))
    height, width = native.shape[:2]
    return ({'height': int(height), 'width': int(width), 'encoding': encoding,
             'is_bigendian': int(sys.byteorder == 'big' and native.dtype.itemsize > 1),
             'step': int(width * channels * native.dtype.itemsize)}, native)


def array_to_image_fields(array: np.ndarray, encoding: str) -> Dict[str, Any]:
    """Image fields (``height, width, encoding, is_bigendian, step, data``) for ``array`` (see
    :func:`image_fields_and_pixels`). ``data`` is ``bytes`` (``tobytes``): the fast way to fill
    a message (assigning an ndarray to ``msg.data`` is ~100x slower).
    """
    fields, pixels = image_fields_and_pixels(array, encoding)
    fields['data'] = pixels.tobytes()
    return fields


def fill_image(msg: Any, array: np.ndarray, encoding: str) -> Any:
    """Set an Image-like ``msg``'s fields from ``array`` (see :func:`array_to_image_fields`)."""
    for name, value in array_to_image_fields(array, encoding).items():
        setattr(msg, name, value)
    return msg


def confidence_to_mono8(confidence: np.ndarray) -> np.ndarray:
    """``(H, W)`` float probabilities in 0..1 -> uint8 0..255 (``round(p * 255)``, clipped).

    The mono8 confidence image of Nav2's semantic segmentation layer; NaN becomes 0.
    """
    scaled = np.nan_to_num(np.asarray(confidence, np.float32), nan=0.0) * np.float32(255.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
