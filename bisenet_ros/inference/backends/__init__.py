"""Inference backends; each imports its runtime (torch, onnxruntime, openvino, tensorrt) lazily.

The registry (:mod:`.registry`) lists them; :func:`create_backend` builds one by name or
``auto``.
"""

from .base import Backend, BackendUnavailableError, OUTPUTS, PRECISIONS
from .registry import BACKENDS, choose_backend, create_backend, REGISTRY

__all__ = ['Backend', 'BackendUnavailableError', 'BACKENDS', 'choose_backend', 'create_backend',
           'OUTPUTS', 'PRECISIONS', 'REGISTRY']
