"""Inference backends; each imports its runtime (torch, onnxruntime, tensorrt) lazily."""

from .base import (Backend, BackendUnavailableError, BACKENDS, choose_backend, create_backend,
                   OUTPUTS, PRECISIONS)

__all__ = ['Backend', 'BackendUnavailableError', 'BACKENDS', 'choose_backend', 'create_backend',
           'OUTPUTS', 'PRECISIONS']
