"""The backend protocol every runtime implements, and the helpers they share.

Which backends exist, and ``auto``, are in :mod:`.registry`.

A backend runs the network on a normalised float32 NCHW batch and returns any of three outputs:

* ``'logits'``: ``(N, C, H, W)`` float32;
* ``'labels'``: ``(N, H, W)`` uint8 (uint16 when ids exceed 255), the argmax over classes;
* ``'confidence'``: ``(N, H, W)`` float32 in [0, 1], the max softmax probability.

Backends compute labels and confidence where it is cheapest (in the graph or on the device);
:func:`derive_outputs` fills in what a backend only has as logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
import importlib.util
import logging
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..postprocess import argmax_labels, max_softmax

LOG = logging.getLogger(__name__)

OUTPUTS = ('logits', 'labels', 'confidence')
#: Every precision a backend may run (each backend says which ones, see :mod:`.registry`).
PRECISIONS = ('fp32', 'fp16', 'bf16', 'int8')
Size = Tuple[int, int]
#: Network input sizes a backend keeps artifacts for (files, sessions, compiled models); the
#: least recently used beyond it is dropped, files included (see ``benchmarks/bench_sizes.py``).
MAX_CACHED_SIZES = 4
#: The network's output stride: a graph exported with dynamic H, W takes multiples of it.
STRIDE = 32
#: The most inference calls one backend runs at once (``streams``).
MAX_STREAMS = 8


class BackendUnavailableError(RuntimeError):
    """The requested backend, device or precision cannot run here; the message says why."""


class LruCache:
    """A mapping of at most ``capacity`` entries; putting one more evicts the least recently
    used, handing it to ``on_evict(key, value)`` (to delete its files, free its session)."""

    def __init__(self, capacity: int,
                 on_evict: Optional[Callable[[Any, Any], None]] = None) -> None:
        if capacity < 1:
            raise ValueError(f'LruCache capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._on_evict = on_evict
        self._items: 'OrderedDict[Hashable, Any]' = OrderedDict()

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` (now the most recently used), or ``default``."""
        if key not in self._items:
            return default
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``; evict the least recently used beyond capacity."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            old_key, old_value = self._items.popitem(last=False)
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def pop_where(self, predicate: Callable[[Any], bool]) -> None:
        """Remove (without ``on_evict``) every entry whose key satisfies ``predicate``."""
        for key in [k for k in self._items if predicate(k)]:
            del self._items[key]

    def clear(self) -> None:
        """Remove every entry (without ``on_evict``)."""
        self._items.clear()

    def items(self) -> List[Tuple[Hashable, Any]]:
        """``(key, value)`` pairs, least recently used first."""
        return list(self._items.items())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


def pad_to_stride(batch: np.ndarray, stride: int = STRIDE) -> Tuple[np.ndarray, Size]:
    """``(N, C, H, W)`` padded bottom/right with zeros to multiples of ``stride`` (the mean
    colour once normalised, as the model's own ``pad`` size policy does), and the ``(H, W)`` to
    crop the outputs back to (:func:`crop_outputs`)."""
    height, width = int(batch.shape[2]), int(batch.shape[3])
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h or pad_w:
        batch = np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
    return batch, (height, width)


def crop_outputs(outputs: Dict[str, np.ndarray], size: Size) -> Dict[str, np.ndarray]:
    """Each output's last two axes (H, W) cut to ``size`` (undoes :func:`pad_to_stride`)."""
    return {name: np.ascontiguousarray(value[..., :size[0], :size[1]])
            if value.shape[-2:] != size else value
            for name, value in outputs.items()}


class Backend(ABC):
    """One loaded network on one runtime.

    Attributes:
        name: The registry name (``'torch'``, ``'onnxruntime'``, ``'openvino'``, ...).
        device: ``'cpu'``, ``'cuda[:i]'`` or ``'gpu[:i]'``.
        precision: One of :data:`PRECISIONS`.
        num_classes: Channels of the logits.
        fixed_size: ``(H, W)`` the network requires, or ``None`` when any size works.
        max_batch: Largest batch one :meth:`infer` call takes, or ``None`` for any.
        available_outputs: What :meth:`infer` can return (all three when logits exist).
        streams: :meth:`infer` calls that run at once, each on its share of the threads, when
            made from as many threads (OpenVINO streams); 1: one call at a time.
    """

    name: str = ''
    device: str = 'cpu'
    precision: str = 'fp32'
    num_classes: int = 0
    fixed_size: Optional[Size] = None
    max_batch: Optional[int] = None
    available_outputs: Tuple[str, ...] = OUTPUTS
    streams: int = 1
    #: What was chosen and why (:class:`.auto_precision.PrecisionChoice`, set by the registry).
    choice: Any = None

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
        streams = f', {self.streams} streams' if self.streams > 1 else ''
        return f'{self.name} on {self.device}, {self.precision}, {size}, {batch}{streams}'

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


def check_stream_count(streams: Union[int, str]) -> Union[int, str]:
    """``streams`` when it is ``'auto'`` or an integer in [1, :data:`MAX_STREAMS`], else
    ``ValueError`` saying what arrived."""
    if streams != 'auto' and (isinstance(streams, bool) or not isinstance(streams, int)
                              or not 1 <= streams <= MAX_STREAMS):
        raise ValueError(f"streams must be 'auto' or an integer in [1, {MAX_STREAMS}], got "
                         f'{streams!r}')
    return streams


def check_outputs(outputs: Sequence[str]) -> Tuple[str, ...]:
    """Validate requested output names."""
    wanted = tuple(outputs)
    bad = [o for o in wanted if o not in OUTPUTS]
    if bad or not wanted:
        raise ValueError(f'unknown outputs {bad or wanted!r}; choose from {OUTPUTS}')
    return wanted


def outputs_to_fetch(backend: str, wanted: Sequence[str],
                     graph_outputs: Sequence[str]) -> List[str]:
    """The graph outputs to fetch for ``wanted``: those the graph has, plus ``logits`` when
    something wanted must be derived from them (:func:`derive_outputs`).

    Raises ``RuntimeError`` naming what is missing when the graph has no logits to derive from.
    """
    fetch = [o for o in wanted if o in graph_outputs]
    if len(fetch) < len(wanted) and 'logits' not in fetch:
        if 'logits' not in graph_outputs:
            missing = [o for o in wanted if o not in fetch]
            raise RuntimeError(f'{backend} backend: the model outputs only {list(graph_outputs)}; '
                               f'{missing} needs a logits or {missing[0]} output (re-export '
                               'with --outputs)')
        fetch.append('logits')
    return fetch


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
    """``'auto'``/``None`` -> ``'cuda'`` when a CUDA GPU is visible else ``'cpu'``; else as
    given (``'gpu[:N]'`` is an OpenVINO GPU, e.g. an Intel iGPU)."""
    if device in (None, 'auto'):
        return 'cuda' if cuda_available() else 'cpu'
    text = str(device)
    if text != 'cpu' and device_class(text) == 'cpu':
        raise ValueError(f"device must be 'cpu', 'cuda[:N]', 'gpu[:N]' or 'auto', got "
                         f'{device!r}')
    return text


def device_class(device: str) -> str:
    """``'cuda'`` for ``'cuda[:N]'``, ``'gpu'`` for ``'gpu[:N]'``, else ``'cpu'``."""
    for prefix in ('cuda', 'gpu'):
        if device == prefix or device.startswith(prefix + ':'):
            return prefix
    return 'cpu'
