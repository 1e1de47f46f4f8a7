"""bisenet_ros: BiSeNet V2 real-time semantic segmentation for ROS 2.

Pure-Python core (model, checkpoints, labels, inference, training, evaluation) with a thin ROS 2
layer in :mod:`bisenet_ros.ros`. Importing this package does not import torch; the public entry
point :func:`load_model` does, when called.
"""

from __future__ import annotations

import os
from typing import Any

from .limits import DECODER_MAX_PIXELS as _DECODER_MAX_PIXELS

__version__ = '0.1.0'
__all__ = ['load_model', '__version__']


def _bound_the_decoder() -> None:
    """OpenCV reads ``OPENCV_IO_MAX_IMAGE_PIXELS`` once, when it loads: set it (unless lower
    already) before anything in the package imports cv2, so that the decoder itself refuses
    images over the package's ceiling (see :func:`bisenet_ros.image_conversions.decode_encoded`).
    """
    name = 'OPENCV_IO_MAX_IMAGE_PIXELS'
    try:
        current = int(os.environ.get(name, ''))
    except ValueError:
        current = 0
    if not 0 < current <= _DECODER_MAX_PIXELS:
        os.environ[name] = str(_DECODER_MAX_PIXELS)


_bound_the_decoder()


def load_model(path: Any, **kwargs: Any) -> Any:
    """Load a BiSeNet V2 checkpoint as an eval-mode ``torch.nn.Module``.

    See :func:`bisenet_ros.model.checkpoint.load_model` for the arguments. Accepts the public
    reference checkpoints (plain state_dict) and this project's checkpoints with metadata.
    """
    from .model.checkpoint import load_model as _load_model
    return _load_model(path, **kwargs)
