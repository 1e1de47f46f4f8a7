"""Image size read from encoded headers (no decoding): every format OpenCV writes here."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from bisenet_ros.image_header import encoded_size, HeaderError

H, W = 23, 37


@pytest.mark.parametrize('ext,params', [
    ('.png', []), ('.jpg', []), ('.jpg', [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), ('.bmp', []),
    ('.webp', [cv2.IMWRITE_WEBP_QUALITY, 80]), ('.webp', [cv2.IMWRITE_WEBP_QUALITY, 101]),
    ('.ppm', []), ('.pgm', []), ('.tiff', []),
])
def test_size_of_every_written_format_matches_the_decoded_image(ext, params):
    image = np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8)
    if ext == '.pgm':
        image = image[:, :, 0]
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    assert decoded.shape[:2] == (H, W)
    assert encoded_size(buf.tobytes()) == (W, H)
    assert encoded_size(buf) == (W, H)  # a flat uint8 array as well (message data)


def png_header(width, height):
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + struct.pack('>I', 13) + b'IHDR' + ihdr
            + struct.pack('>I', zlib.crc32(b'IHDR' + ihdr)))


def test_huge_sizes_are_read_from_the_header_alone():
    assert encoded_size(png_header(200000, 100000)) == (200000, 100000)
    ok, buf = cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 9] = struct.pack('>HH', 60000, 50000)
    assert encoded_size(bytes(data)) == (50000, 60000)


@pytest.mark.parametrize('data,reason', [
    (b'', 'not a png, jpeg'),
    (b'hello world, not an image', 'starts with 68 65 6c'),
    (b'\x89PNG\r\n\x1a\n\x00\x00', 'no IHDR'),
    (b'\xff\xd8\xff\xe0\x00\x10JFIF', 'no frame header'),
    (b'\xff\xd8\x00\x00\x00\x00', 'expected a marker at byte 2'),
    (b'II*\x00\xff\xff\x00\x00', 'truncated'),
    (b'RIFF\x00\x00\x00\x00WEBPVP8 ', 'webp'),
])
def test_unreadable_headers_are_refused_with_the_reason(data, reason):
    with pytest.raises(HeaderError, match=reason):
        encoded_size(data)


def test_jpeg_with_height_defined_later_is_refused():
    ok, buf = cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b'\xff\xc0')
    data[sof + 5:sof + 7] = b'\x00\x00'
    with pytest.raises(HeaderError, match='DNL'):
        encoded_size(bytes(data))


@pytest.mark.parametrize('end', [b'\r', b'\n', b'\r\n'])
def test_pnm_comment_ends_where_the_decoder_ends_it(end):
    """OpenCV ends a PNM comment at CR or LF: a header reader that ran on to LF would take the
    digits after a CR for comment and read another size than the decoder."""
    pixels = b'\x00' * (3 * 5 * 7)
    data = b'P6\n# comment' + end + b'5 7\n255\n' + pixels
    assert encoded_size(data) == (5, 7)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None and decoded.shape[:2] == (7, 5)
