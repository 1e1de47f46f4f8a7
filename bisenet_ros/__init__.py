"""bisenet_ros: BiSeNet V2 real-time semantic segmentation for ROS 2.

Pure-Python core (model, checkpoints, labels, inference, training, evaluation) with a thin ROS 2
layer in :mod:`bisenet_ros.ros`. Importing this package does not import torch; the public entry
point :func:`load_model` does, when called.
"""

from __future__ import annotations

from typing import Any

__version__ = '0.1.0'
__all__ = ['load_model', '__version__']


def load_model(path: Any, **kwargs: Any) -> Any:
    """Load a BiSeNet V2 checkpoint as an eval-mode ``torch.nn.Module``.

    See :func:`bisenet_ros.model.checkpoint.load_model` for the arguments. Accepts the public
    reference checkpoints (plain state_dict) and this project's checkpoints with metadata.
    """
    from .model.checkpoint import load_model as _load_model
    return _load_model(path, **kwargs)
