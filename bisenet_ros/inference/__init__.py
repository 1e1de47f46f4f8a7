"""Inference engine (no ROS): :class:`Segmenter` over torch, ONNX Runtime, OpenVINO or TensorRT.

Importing this package imports numpy only; each backend imports its runtime when it is built.
"""

from .backends import Backend, BackendUnavailableError, create_backend
from .segmenter import GroupResult, SegmentationResult, Segmenter

__all__ = ['Backend', 'BackendUnavailableError', 'create_backend', 'GroupResult',
           'SegmentationResult', 'Segmenter']
