"""Inference engine (no ROS): :class:`Segmenter` over torch, ONNX Runtime or TensorRT backends.

Importing this package imports numpy only; each backend imports its runtime when it is built.
"""

from .backends.base import Backend, BackendUnavailableError, create_backend
from .segmenter import SegmentationResult, Segmenter

__all__ = ['Backend', 'BackendUnavailableError', 'create_backend', 'SegmentationResult',
           'Segmenter']
