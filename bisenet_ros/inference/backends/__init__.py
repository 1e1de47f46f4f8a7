"""Inference backends; each imports its runtime (torch, onnxruntime, openvino, tensorrt) lazily.

The registry (:mod:`.registry`) lists them; :func:`create_backend` builds one by name or
``auto``; ``precision='auto'`` is explained in :mod:`.auto_precision`.
"""

from .base import Backend, BackendUnavailableError, MAX_STREAMS, OUTPUTS, PRECISIONS
from .auto_precision import DEFAULT_BOUND, PrecisionChoice
from .registry import BACKENDS, choose_backend, create_backend, PRECISION_CHOICES, REGISTRY

__all__ = ['Backend', 'BackendUnavailableError', 'BACKENDS', 'choose_backend', 'create_backend',
           'MAX_STREAMS',
           'DEFAULT_BOUND', 'OUTPUTS', 'PRECISION_CHOICES', 'PRECISIONS', 'PrecisionChoice',
           'REGISTRY']
