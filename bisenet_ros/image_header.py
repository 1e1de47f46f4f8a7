"""Width and height of an encoded image read from its header, without decoding it.

A few hundred kB of PNG can decode to 20000x20000 pixels (1.2 GB as BGR, more once a network
runs on it): the size must be known, and refused, before the decoder runs. This module reads it
from the bytes of PNG (IHDR), JPEG (the SOF marker), BMP, GIF, WebP (VP8, VP8L, VP8X), PNM
(P1..P6) and TIFF (first IFD). Pure Python, no decoder is involved.

This is the cheap first check only: the size the decoder itself finds is the authority, see
:func:`bisenet_ros.image_conversions.decode_encoded` (which refuses a file whose decoded size
differs from the size read here).
"""

from __future__ import annotations

import re
import struct
from typing import Any, Tuple

#: The formats :func:`encoded_size` reads, for messages.
HEADER_FORMATS = ('png', 'jpeg', 'bmp', 'gif', 'webp', 'pnm', 'tiff')

#: JPEG start-of-frame markers (C0..CF less DHT C4, JPG C8 and DAC CC) carry the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: PNM: a comment runs from ``#`` to the end of the line, which OpenCV's reader (like netpbm)
#: ends at ``\n`` or ``\r``: a reader ending it at ``\n`` only would take digits after a ``\r``
#: for part of the comment and read another size than the decoder.
_PNM = re.compile(rb'P[1-6](?:\s+|#[^\r\n]*[\r\n])+(\d+)(?:\s+|#[^\r\n]*[\r\n])+(\d+)')


class HeaderError(ValueError):
    """The bytes are not an image whose size this module can read; the message says why."""


def _png(data: bytes) -> Tuple[int, int]:
    if len(data) < 24 or data[12:16] != b'IHDR':
        raise HeaderError('png: no IHDR chunk after the signature')
    return struct.unpack('>II', data[16:24])


def _jpeg(data: bytes) -> Tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise HeaderError(f'jpeg: expected a marker at byte {pos}, found 0x{data[pos]:02x}')
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length field
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image / start of scan before any frame header
        length = struct.unpack('>H', data[pos + 2:pos + 4])[0]
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack('>HH', data[pos + 5:pos + 9])
            if height == 0:
                raise HeaderError('jpeg: frame height 0 (defined later by a DNL marker); '
                                  'the size cannot be known before decoding')
            return width, height
        if length < 2:
            raise HeaderError(f'jpeg: segment 0x{marker:02x} at byte {pos} has length {length}')
        pos += 2 + length
    raise HeaderError('jpeg: no frame header (SOF marker) before the image data')


def _bmp(data: bytes) -> Tuple[int, int]:
    if len(data) < 26:
        raise HeaderError('bmp: header truncated')
    if struct.unpack('<I', data[14:18])[0] == 12:  # BITMAPCOREHEADER
        return struct.unpack('<HH', data[18:22])
    width, height = struct.unpack('<ii', data[18:26])
    return abs(width), abs(height)  # negative height: rows stored top-down


def _gif(data: bytes) -> Tuple[int, int]:
    if len(data) < 10:
        raise HeaderError('gif: header truncated')
    return struct.unpack('<HH', data[6:10])


def _webp(data: bytes) -> Tuple[int, int]:
    chunk = data[12:16]
    if chunk == b'VP8 ' and len(data) >= 30 and data[23:26] == b'\x9d\x01\x2a':
        width, height = struct.unpack('<HH', data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b'VP8L' and len(data) >= 25 and data[20] == 0x2F:
        bits = struct.unpack('<I', data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b'VP8X' and len(data) >= 30:
        return (int.from_bytes(data[24:27], 'little') + 1,
                int.from_bytes(data[27:30], 'little') + 1)
    raise HeaderError(f'webp: unknown or truncated chunk {chunk!r}')


def _pnm(data: bytes) -> Tuple[int, int]:
    match = _PNM.match(data[:4096])
    if match is None:
        raise HeaderError('pnm: no width and height in the first 4096 bytes')
    return int(match.group(1)), int(match.group(2))


def _tiff(data: bytes) -> Tuple[int, int]:
    order = '<' if data[:2] == b'II' else '>'
    try:
        offset = struct.unpack(order + 'I', data[4:8])[0]
        count = struct.unpack(order + 'H', data[offset:offset + 2])[0]
        size = {}
        for i in range(count):
            entry = data[offset + 2 + 12 * i:offset + 14 + 12 * i]
            tag, kind = struct.unpack(order + 'HH', entry[:4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
                fmt = order + ('H' if kind == 3 else 'I')
                size[tag] = struct.unpack(fmt, entry[8:8 + struct.calcsize(fmt)])[0]
    except struct.error:
        raise HeaderError('tiff: image file directory truncated') from None
    if len(size) != 2:
        raise HeaderError('tiff: no ImageWidth/ImageLength in the first directory')
    return size[256], size[257]


def _reader(head: bytes) -> Any:
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return _png
    if head.startswith(b'\xff\xd8'):
        return _jpeg
    if head.startswith(b'BM'):
        return _bmp
    if head.startswith((b'GIF87a', b'GIF89a')):
        return _gif
    if head.startswith(b'RIFF') and head[8:12] == b'WEBP':
        return _webp
    if head[:1] == b'P' and head[1:2] in b'123456' and len(head) > 2:
        return _pnm
    if head.startswith((b'II*\x00', b'MM\x00*')):
        return _tiff
    return None


def encoded_size(data: Any) -> Tuple[int, int]:
    """``(width, height)`` in pixels of the encoded image ``data`` (bytes-like), header only.

    Raises :class:`HeaderError` for a format not in :data:`HEADER_FORMATS` or a header that is
    truncated or inconsistent (such data would not decode either).
    """
    raw = data if isinstance(data, bytes) else bytes(data[:1 << 16])
    reader = _reader(raw[:16])
    if reader is None:
        raise HeaderError(f'not a {", ".join(HEADER_FORMATS)} image (starts with '
                          f'{raw[:8].hex(" ") or "nothing"})')
    if reader is _tiff and not isinstance(data, bytes):
        raw = bytes(data)  # the first directory may lie anywhere in the file
    return reader(raw)
