"""The backend protocol and the factory that picks one (``auto``) with lazy imports.

A backend runs the network on a normalised float32 NCHW batch and returns any of three outputs:

* ``'logits'``: ``(N, C, H, W)`` float32;
* ``'labels'``: ``(N, H, W)`` uint8 (uint16 when ids exceed 255), the argmax over classes;
* ``'confidence'``: ``(N, H, W)`` float32 in [0, 1], the max softmax probability.

Backends compute labels and confidence where it is cheapest (in the graph or on the device);
:func:`derive_outputs` fills in what a backend only has as logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..postprocess import argmax_labels, max_softmax

LOG = logging.getLogger(__name__)

OUTPUTS = ('logits', 'labels', 'confidence')
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
BACKENDS = ('auto', 'torch', 'onnxruntime', 'tensorrt')
#: File suffixes of serialized TensorRT engines.
ENGINE_SUFFIXES = ('.engine', '.plan', '.trt')
Size = Tuple[int, int]


class BackendUnavailableError(RuntimeError):
    """The requested backend, device or precision cannot run here; the message says why."""


class Backend(ABC):
    """One loaded network on one runtime.

    Attributes:
        name: ``'torch'``, ``'onnxruntime'`` or ``'tensorrt'``.
        device: ``'cpu'`` or ``'cuda[:i]'``.
        precision: One of :data:`PRECISIONS`.
        num_classes: Channels of the logits.
        fixed_size: ``(H, W)`` the network requires, or ``None`` when any size works.
        max_batch: Largest batch one :meth:`infer` call takes, or ``None`` for any.
        available_outputs: What :meth:`infer` can return (all three when logits exist).
    """

    name: str = ''
    device: str = 'cpu'
    precision: str = 'fp32'
    num_classes: int = 0
    fixed_size: Optional[Size] = None
    max_batch: Optional[int] = None
    available_outputs: Tuple[str, ...] = OUTPUTS

    @abstractmethod
    def infer(self, batch: np.ndarray,
              outputs: Sequence[str] = ('logits',)) -> Dict[str, np.ndarray]:
        """Run ``batch`` (float32 ``(N, 3, H, W)``); returns the requested :data:`OUTPUTS`."""

    def close(self) -> None:
        """Release runtime resources (sessions, engines, device memory). Idempotent."""

    def describe(self) -> str:
        """One line for logs: name, device, precision and shape constraints."""
        fixed = self.fixed_size
        size = 'any size' if fixed is None else f'{fixed[0]}x{fixed[1]}'
        batch = 'any batch' if self.max_batch is None else f'batch <= {self.max_batch}'
        return f'{self.name} on {self.device}, {self.precision}, {size}, {batch}'

    def check_batch(self, batch: np.ndarray) -> None:
        """``ValueError`` unless ``batch`` is float32 NCHW with 3 channels within the limits."""
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32 or batch.ndim != 4 \
                or batch.shape[1] != 3:
            got = getattr(batch, 'shape', None), getattr(batch, 'dtype', type(batch).__name__)
            raise ValueError(f'{self.name} backend: expected float32 (N, 3, H, W), got {got}')
        if self.fixed_size is not None and tuple(batch.shape[2:]) != self.fixed_size:
            raise ValueError(f'{self.name} backend: the network takes {self.fixed_size[0]}x'
                             f'{self.fixed_size[1]} inputs, got {batch.shape[2]}x'
                             f'{batch.shape[3]}; set input_size={self.fixed_size}')
        if self.max_batch is not None and batch.shape[0] > self.max_batch:
            raise ValueError(f'{self.name} backend: batch {batch.shape[0]} exceeds the '
                             f'network\'s maximum {self.max_batch}')

    def __enter__(self) -> 'Backend':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_outputs(outputs: Sequence[str]) -> Tuple[str, ...]:
    """Validate requested output names."""
    wanted = tuple(outputs)
    bad = [o for o in wanted if o not in OUTPUTS]
    if bad or not wanted:
        raise ValueError(f'unknown outputs {bad or wanted!r}; choose from {OUTPUTS}')
    return wanted


def derive_outputs(outputs: Sequence[str], have: Dict[str, np.ndarray],
                   label_dtype: Optional[np.dtype] = None) -> Dict[str, np.ndarray]:
    """Complete ``have`` with labels/confidence computed from its logits; keep only ``outputs``."""
    result = {}
    for name in outputs:
        if name in have:
            value = have[name]
            if name == 'labels' and label_dtype is not None and value.dtype != label_dtype:
                value = value.astype(label_dtype)
            result[name] = value
        elif 'logits' not in have:
            raise RuntimeError(f'backend produced {sorted(have)} but {name!r} was requested')
        elif name == 'labels':
            result[name] = argmax_labels(have['logits'], label_dtype)
        else:
            result[name] = max_softmax(have['logits'])
    return result


def module_available(name: str) -> bool:
    """Whether ``import name`` would find a module (without importing it)."""
    return importlib.util.find_spec(name) is not None


def cuda_available() -> bool:
    """A CUDA GPU is visible to torch (False when torch is absent)."""
    if not module_available('torch'):
        return False
    import torch
    return bool(torch.cuda.is_available())


def resolve_device(device: Optional[str]) -> str:
    """``'auto'``/``None`` -> ``'cuda'`` when a GPU is visible else ``'cpu'``; else as given."""
    if device in (None, 'auto'):
        return 'cuda' if cuda_available() else 'cpu'
    text = str(device)
    if text != 'cpu' and not text.startswith('cuda'):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return text


def choose_backend(model: Any, device: str, precision: str) -> Tuple[str, str]:
    """The ``auto`` rule: ``(backend name, reason)``.

    TensorRT when the model is an engine, or when a GPU is the device and ``tensorrt`` is
    installed; else ONNX Runtime when installed and the precision is one it runs; else torch.
    """
    suffix = Path(str(model)).suffix.lower() if isinstance(model, (str, os.PathLike)) else ''
    if suffix in ENGINE_SUFFIXES:
        return 'tensorrt', f'the model is a TensorRT engine ({suffix})'
    on_gpu = device.startswith('cuda')
    if on_gpu and module_available('tensorrt') and precision in ('fp32', 'fp16', 'int8'):
        return 'tensorrt', 'a GPU is the device and tensorrt is installed'
    ort_precisions = ('fp32', 'fp16') if on_gpu else ('fp32', 'int8')
    if not module_available('onnxruntime'):
        reason = 'onnxruntime is not installed'
    elif precision not in ort_precisions:
        reason = f'onnxruntime on {device} does not run {precision}'
    else:
        why = 'tensorrt is not installed' if on_gpu else 'the device is the CPU'
        return 'onnxruntime', f'{why}; onnxruntime is installed'
    if suffix == '.onnx':
        raise BackendUnavailableError(f'backend auto: {model} is an ONNX file but {reason}')
    return 'torch', reason


def create_backend(name: str, model: Any, *, device: Optional[str] = 'cpu',
                   precision: str = 'fp32', threads: Optional[int] = None,
                   input_size: Optional[Size] = None, **options: Any) -> Backend:
    """Build a backend by name, importing only its runtime.

    Args:
        name: One of :data:`BACKENDS`.
        model: A ``BiSeNetV2`` module, a checkpoint path, an ``.onnx`` file or an engine file
            (what each backend accepts is checked by the backend).
        device: ``'cpu'``, ``'cuda[:i]'`` or ``'auto'``.
        precision: One of :data:`PRECISIONS`.
        threads: CPU threads for the runtime (``None``: its default).
        input_size: ``(H, W)`` the network will see, when fixed (export-based backends).
        options: Backend-specific keyword options.
    """
    if name not in BACKENDS:
        raise ValueError(f'unknown backend {name!r}; expected one of {BACKENDS}')
    if precision not in PRECISIONS:
        raise ValueError(f'unknown precision {precision!r}; expected one of {PRECISIONS}')
    device = resolve_device(device)
    kwargs = dict(device=device, precision=precision, threads=threads, input_size=input_size,
                  **options)
    if name != 'auto':
        return _create_named(name, model, **kwargs)
    name, reason = choose_backend(model, device, precision)
    LOG.info('backend auto -> %s (%s)', name, reason)
    suffix = Path(str(model)).suffix.lower() if isinstance(model, (str, os.PathLike)) else ''
    readers = ('tensorrt',) if suffix in ENGINE_SUFFIXES else \
        ('onnxruntime',) if suffix == '.onnx' else ('onnxruntime', 'torch')
    order = [name] + [n for n in readers if n != name]
    for i, candidate in enumerate(order):
        try:
            return _create_named(candidate, model, **kwargs)
        except (BackendUnavailableError, ImportError, OSError, RuntimeError) as exc:
            if i == len(order) - 1:
                raise
            LOG.warning('backend auto: %s failed to initialise (%s: %s); falling back to %s',
                        candidate, type(exc).__name__, exc, order[i + 1])
    raise AssertionError('unreachable')


def _create_named(name: str, model: Any, *, device: str, precision: str,
                  threads: Optional[int], input_size: Optional[Size],
                  **options: Any) -> Backend:
    """Build the backend ``name`` (not ``auto``); see :func:`create_backend`."""
    if name == 'torch':
        from .torch_backend import TorchBackend
        return TorchBackend(model, device=device, precision=precision, threads=threads,
                            **options)
    if name == 'onnxruntime':
        if not module_available('onnxruntime'):
            raise BackendUnavailableError('backend onnxruntime: the onnxruntime package is not '
                                          'installed (pip install onnxruntime)')
        from .onnxruntime_backend import OnnxRuntimeBackend
        return OnnxRuntimeBackend(model, device=device, precision=precision, threads=threads,
                                  input_size=input_size, **options)
    if not module_available('tensorrt'):
        raise BackendUnavailableError('backend tensorrt: the tensorrt package is not installed '
                                      '(it needs an NVIDIA GPU and the TensorRT wheels)')
    from .tensorrt_backend import TensorRTBackend
    return TensorRTBackend(model, device=device, precision=precision, input_size=input_size,
                           **options)
