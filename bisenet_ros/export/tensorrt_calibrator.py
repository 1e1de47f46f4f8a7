"""INT8 entropy calibrator for weakly typed TensorRT builds (TensorRT < 10.12).

Feeds preprocessed user images through torch CUDA buffers; the current batch's buffer stays
referenced until the next ``get_batch`` call, as TensorRT reads it asynchronously.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Tuple

from ..preprocess import preprocess
from ..user_files import write_atomic
from .quantize import load_calibration_images

LOG = logging.getLogger(__name__)


def make_calibrator(trt: Any, torch: Any, images: Any, size: Tuple[int, int], batch: int,
                    label_set: Any, cache_file: Path, device: str, limit: int = 64):
    """An ``IInt8EntropyCalibrator2`` over ``images`` (folder or BGR uint8 arrays).

    The calibration table is cached in ``cache_file`` and reused by later builds (a rebuild
    for a new TensorRT or GPU can then run without the images).
    """
    from ..labels import IMAGENET_MEAN, IMAGENET_STD
    if images is None and not cache_file.is_file():
        raise ValueError(f'int8 calibration: no calibration images and no table {cache_file}')
    frames = load_calibration_images(images, limit) if images is not None else []
    mean = label_set.mean if label_set is not None else IMAGENET_MEAN
    std = label_set.std if label_set is not None else IMAGENET_STD

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = 0
            self._current: Optional[Any] = None  # the device buffer TensorRT is reading

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names):  # noqa: D401 - TensorRT callback
            if self._next + batch > len(frames):
                return None
            chunk = frames[self._next:self._next + batch]
            self._next += batch
            host, _ = preprocess(chunk, mean, std, bgr=True, input_size=size)
            self._current = torch.from_numpy(host).to(device)
            return [int(self._current.data_ptr())]

        def read_calibration_cache(self):
            if cache_file.is_file():
                LOG.info('int8: reusing calibration table %s', cache_file)
                return cache_file.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            write_atomic(cache_file, bytes(cache))

    return EntropyCalibrator()
