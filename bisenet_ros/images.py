"""A colour image as a typed value: ``(H, W, 3)`` uint8 pixels with their channel order, checked
once, when the value is made. Plain numpy.

A frame's path: :mod:`~bisenet_ros.image_conversions` decodes a message into a
:class:`ColorImage` (BGR, or RGB for rgb inputs so that no channel swap is spent); the
:class:`~bisenet_ros.inference.Segmenter` groups it, :func:`~bisenet_ros.preprocess.preprocess`
normalises it and the overlay is blended in its own channel order, none of them checking it
again. Plain arrays handed to the library are made into one by :func:`as_color_image`.
Plain numpy, and OpenCV for the channel swap (:func:`reverse_channels`).
"""

from __future__ import annotations

from dataclasses import dataclass, InitVar
from typing import Any, Tuple

import numpy as np


def check_image(image: object, what: str = 'image') -> np.ndarray:
    """Validate one ``(H, W, 3)`` uint8 image; returns it as an ndarray.

    Raises:
        ValueError: not an ndarray, wrong dtype, rank or channel count, or empty; the message
            starts with ``what`` and says what arrived.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f'{what}: expected a numpy array (H, W, 3) uint8, got '
                         f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'{what}: expected dtype uint8, got {image.dtype} '
                         f'(shape {image.shape})')
    if image.ndim != 3:
        raise ValueError(f'{what}: expected rank 3 (H, W, 3), got rank {image.ndim} '
                         f'(shape {image.shape})')
    if image.shape[2] != 3:
        raise ValueError(f'{what}: expected 3 channels (H, W, 3), got {image.shape[2]} '
                         f'(shape {image.shape})')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f'{what}: empty image, shape {image.shape}')
    return image


@dataclass(frozen=True, eq=False)
class ColorImage:
    """``(H, W, 3)`` uint8 pixels and their channel order, validated when made.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 array (may be a read-only or strided view).
        bgr: True when the channels are B, G, R; False for R, G, B.

    Args:
        what: Names the image in the ``ValueError`` raised for unfit pixels (not stored).
    """

    pixels: np.ndarray
    bgr: bool = True
    what: InitVar[str] = 'image'

    def __post_init__(self, what: str) -> None:
        check_image(self.pixels, what)
        if not isinstance(self.bgr, (bool, np.bool_)):
            raise ValueError(f'{what}: bgr must be a bool, got {type(self.bgr).__name__}')
        object.__setattr__(self, 'bgr', bool(self.bgr))

    @property
    def size(self) -> Tuple[int, int]:
        """``(H, W)`` in pixels."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def to_bgr(self) -> np.ndarray:
        """The pixels in B, G, R order: ``pixels`` itself when already BGR, else a C-contiguous
        copy with the channels reversed."""
        return self.pixels if self.bgr else reverse_channels(self.pixels)


def reverse_channels(pixels: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``(H, W, 3)`` uint8 ``pixels`` with the channel order reversed
    (RGB <-> BGR).

    OpenCV's swap: numpy's copy of a ``[:, :, ::-1]`` view took 3.3 ms at 640x480 on an AMD
    EPYC, the swap 0.06 ms. Views OpenCV cannot take (negative strides) are copied by numpy.
    """
    pixels = check_image(pixels, 'reverse_channels')
    if pixels.strides[1:] == (3, 1) and pixels.strides[0] > 0:  # rows OpenCV can address
        import cv2
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(pixels[:, :, ::-1])


def as_color_image(image: Any, bgr: bool = True, what: str = 'image') -> ColorImage:
    """``image`` as a :class:`ColorImage`: itself when it already is one (its own channel
    order wins), else the array validated and tagged with ``bgr``.

    Raises:
        ValueError: not a ``(H, W, 3)`` uint8 array (the message starts with ``what``).
    """
    if isinstance(image, ColorImage):
        return image
    return ColorImage(image, bgr, what)
