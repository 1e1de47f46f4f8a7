"""Image files on disk: the one list of suffixes the package reads, and how folders are listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Sequence, Union

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
