"""Image files on disk: the one list of suffixes the package reads, how folders are listed,
and the one way an image file is read (:func:`read_image`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np

from .limits import DEFAULT_MAX_INPUT_PIXELS

#: Suffixes (lower case) of the image files every tool reads from a folder.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff', '.webp')


def list_images(folder: Union[str, Path]) -> List[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def collect_images(inputs: Sequence[Union[str, Path]]) -> List[Path]:
    """Files given directly, plus the image files inside given folders (name order).

    Raises ``FileNotFoundError`` naming an input that is neither a file nor a folder.
    """
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f'image {path}: no such file or folder')
    return files


def spread_evenly(items: Sequence[Any], limit: int) -> List[Any]:
    """At most ``limit`` of ``items``, evenly spaced (recordings named in time order: frames
    from the whole recording rather than its first seconds)."""
    return list(items[::max(1, len(items) // limit)][:limit])


def read_image(path: Union[str, Path], max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
               labels: bool = False, what: str = 'image') -> np.ndarray:
    """The pixels of the image file ``path``: ``(H, W, 3)`` uint8 BGR, or with ``labels`` the
    ``(H, W)`` uint8 class ids of a label image.

    Read through :func:`bisenet_ros.user_files.read_bytes` (a regular file, bounded in bytes
    and time) and decoded by :func:`bisenet_ros.image_conversions.decode_encoded` within
    ``max_pixels`` (0: the decoder's ceiling). Every problem is a ``ValueError``
    (``UserFileError`` or ``ConversionError``) naming ``what`` and the file.
    """
    from .image_conversions import decode_encoded
    from .limits import pixel_bound
    from .user_files import read_bytes
    data = read_bytes(path, what, 8 * pixel_bound(max_pixels) + (1 << 20))  # over raw RGBA16
    return decode_encoded(data, max_pixels, f'{what} {path}', labels=labels)


def read_images(paths: Sequence[Union[str, Path]]) -> List[np.ndarray]:
    """:func:`read_image` of each path, leaving out (with a logged warning) those it refuses:
    calibration and agreement frames, where one bad file should not stop the others."""
    import logging
    images = []
    for path in paths:
        try:
            images.append(read_image(path))
        except ValueError as exc:
            logging.getLogger(__name__).warning('%s; skipped', exc)
    return images
