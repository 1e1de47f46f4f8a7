"""The backend registry: name -> lazily imported class, what it reads and runs, and ``auto``.

Adding a backend means one module in this package plus one :class:`BackendEntry` below; no
backend imports another. ``auto`` walks :data:`PREFERENCE` for the device and precision and takes
the first backend that reads the model, is installed and runs that precision there, logging
why (and why each one before it was passed over). ``precision='auto'`` (the default) walks the
candidates of :mod:`.auto_precision` behind its agreement guard.
"""

from __future__ import annotations

from dataclasses import dataclass
import importlib
import inspect
import logging
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from ...cpu_features import cpu_features
from ..model_file import kind_of
from .auto_precision import (Candidate, DEFAULT_BOUND, FP32, Guard, GUARD_SIZE, plan,
                             PrecisionChoice, runtime_version)
from .base import (Backend, BackendUnavailableError, check_stream_count, cuda_available,
                   device_class, module_available, PRECISIONS, resolve_device, Size)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendEntry:
    """One backend as the registry knows it, without importing it.

    Attributes:
        name: Backend name (``Backend.name``).
        module: Module in this package defining the class.
        cls: Class name.
        requires: Python module that must be importable (the runtime).
        install: How to get ``requires``.
        reads: Model kinds it runs (see :data:`bisenet_ros.inference.model_file.KINDS`).
        precisions: Device class (``'cpu'``, ``'cuda'``, ``'gpu'``) -> precisions it runs there.
    """

    name: str
    module: str
    cls: str
    requires: str
    install: str
    reads: Tuple[str, ...]
    precisions: Dict[str, Tuple[str, ...]]

    def available(self) -> bool:
        """Whether its runtime is installed (checked without importing it)."""
        return module_available(self.requires)

    def load(self) -> type:
        """Import and return the backend class."""
        if not self.available():
            raise BackendUnavailableError(f'backend {self.name}: the {self.requires} package is '
                                          f'not installed ({self.install})')
        return getattr(importlib.import_module(f'{__package__}.{self.module}'), self.cls)

    def why_not(self, kind: str, device: str, precision: str) -> Optional[str]:
        """Why it cannot run a ``kind`` model at ``precision`` on ``device``; ``None``: it can."""
        if kind not in self.reads:
            return f'{self.name} does not read {kind} models'
        if not self.available():
            return f'{self.requires} is not installed'
        if precision not in self.precisions.get(device_class(device), ()):
            return f'{self.name} does not run {precision} on {device}'
        return None


_ONNX_KINDS = ('module', 'checkpoint', 'onnx', 'onnx-int8')
REGISTRY: Dict[str, BackendEntry] = {e.name: e for e in (
    BackendEntry('torch', 'torch_backend', 'TorchBackend', 'torch', 'pip install torch',
                 ('module', 'checkpoint'),
                 {'cpu': ('fp32', 'bf16'), 'cuda': ('fp32', 'fp16', 'bf16')}),
    BackendEntry('onnxruntime', 'onnxruntime_backend', 'OnnxRuntimeBackend', 'onnxruntime',
                 'pip install onnxruntime', _ONNX_KINDS,
                 {'cpu': ('fp32', 'int8'), 'cuda': ('fp32', 'fp16')}),
    BackendEntry('openvino', 'openvino_backend', 'OpenVINOBackend', 'openvino',
                 'pip install openvino', _ONNX_KINDS + ('openvino-ir',),
                 {'cpu': ('fp32', 'bf16', 'int8'), 'gpu': ('fp32', 'fp16', 'int8')}),
    BackendEntry('tensorrt', 'tensorrt_backend', 'TensorRTBackend', 'tensorrt',
                 'it needs an NVIDIA GPU and the TensorRT wheels', _ONNX_KINDS + ('engine',),
                 {'cuda': ('fp32', 'fp16', 'int8')}),
)}
#: Every name ``create_backend`` takes.
BACKENDS = ('auto',) + tuple(REGISTRY)
#: Every precision ``create_backend`` takes: ``'auto'`` (the default) and :data:`PRECISIONS`.
PRECISION_CHOICES = ('auto',) + PRECISIONS
#: Backends that run several inference calls at once (``streams``; at most
#: :data:`~.base.MAX_STREAMS`).
STREAMS_BACKENDS = ('openvino',)
#: Model kinds whose file fixes the precision (``auto`` runs them as they are).
FIXED_PRECISION_KINDS = ('engine', 'onnx-int8')

#: ``auto``'s order per (device class, precision), fastest first. CPU figures at 512x1024,
#: 2 threads, one run (benchmarks/RESULTS.md): int8 OpenVINO 89 ms vs ONNX Runtime 103 ms on
#: the same Q/DQ graph; bf16 OpenVINO 127 ms vs torch autocast about 2x that; fp32 OpenVINO
#: and ONNX Runtime within noise (239 vs 245 ms), ONNX Runtime kept first there. Re-measured
#: on the 2-core AMD EPYC (AVX2) host under load, 7 interleaved rounds: ONNX Runtime 870 ms vs
#: OpenVINO 894 ms at 480x640, 2465 vs 2396 ms at 512x1024: within noise again, order kept.
PREFERENCE: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ('cpu', 'fp32'): ('onnxruntime', 'openvino', 'torch'),
    ('cpu', 'int8'): ('openvino', 'onnxruntime'),
    ('cpu', 'bf16'): ('openvino', 'torch'),
    ('cuda', 'fp32'): ('tensorrt', 'onnxruntime', 'torch'),
    ('cuda', 'fp16'): ('tensorrt', 'onnxruntime', 'torch'),
    ('cuda', 'int8'): ('tensorrt',),
    ('cuda', 'bf16'): ('torch',),
    ('gpu', 'fp32'): ('openvino',),
    ('gpu', 'fp16'): ('openvino',),
    ('gpu', 'int8'): ('openvino',),
}


def check_name(name: str) -> BackendEntry:
    """The entry of ``name`` (not ``'auto'``); ``ValueError`` for an unknown name."""
    if name not in REGISTRY:
        raise ValueError(f'unknown backend {name!r}; expected one of {BACKENDS}')
    return REGISTRY[name]


def candidates(model: Any, device: str, precision: str) -> Tuple[List[str], List[str]]:
    """``auto``'s usable backends in order, and why each other preferred one was passed over.

    A TensorRT engine or an OpenVINO IR has one reader, which is always the only candidate.
    """
    kind = kind_of(model)
    readers = [e.name for e in REGISTRY.values() if kind in e.reads]
    if len(readers) == 1:
        return readers, []
    usable, passed = [], []
    order = PREFERENCE.get((device_class(device), precision), ())
    for name in order or tuple(REGISTRY):  # no preference: say why each one cannot
        why = REGISTRY[name].why_not(kind, device, precision)
        if why is None and order:
            usable.append(name)
        else:
            passed.append(f'{name}: {why or "not meant for this"}')
    return usable, passed


def choose_backend(model: Any, device: str, precision: str) -> Tuple[str, str]:
    """The ``auto`` rule: ``(backend name, reason)``; ``BackendUnavailableError`` if none fits."""
    usable, passed = candidates(model, device, precision)
    if not usable:
        raise BackendUnavailableError(f'backend auto: nothing runs {kind_of(model)} models at '
                                      f'{precision} on {device} here ({"; ".join(passed)})')
    order = PREFERENCE.get((device_class(device), precision), ())
    reason = (f'the only backend that reads {kind_of(model)} models' if usable[0] not in order else
              f'first usable of {list(order)} for {precision} on {device}')
    if passed:
        reason += f' (passed over: {"; ".join(passed)})'
    return usable[0], reason


def create_backend(name: str, model: Any, *, device: Optional[str] = 'cpu',
                   precision: str = 'auto', threads: Optional[int] = None,
                   input_size: Optional[Size] = None, agreement_bound: float = DEFAULT_BOUND,
                   guard_frames: Any = None, streams: Union[int, str, None] = None,
                   **options: Any) -> Backend:
    """Build a backend by name, importing only its runtime.

    The backend's ``choice`` (:class:`.auto_precision.PrecisionChoice`) says what was chosen
    and why (for ``precision='auto'``: the agreement measured and what was passed over).

    Args:
        name: One of :data:`BACKENDS`.
        model: A ``BiSeNetV2`` module, a checkpoint path, an ``.onnx`` file, an OpenVINO IR or
            an engine file (what each backend reads is in :data:`REGISTRY`).
        device: ``'cpu'``, ``'cuda[:i]'``, ``'gpu[:i]'`` (OpenVINO's Intel GPU) or ``'auto'``.
        precision: ``'auto'`` (fastest native configuration within ``agreement_bound``, see
            :mod:`.auto_precision`) or one of :data:`PRECISIONS` (used as given).
        threads: CPU threads for the runtime's session (``None``: its default). torch's thread
            pool is per process: set it at the entry point, not here.
        input_size: ``(H, W)`` the network will see, when fixed (export-based backends).
        agreement_bound: ``precision='auto'``: least label agreement with fp32 (0..1].
        guard_frames: ``precision='auto'``: BGR uint8 images the agreement is measured on
            (default: the packaged demo frames).
        streams: Inference calls that may run at once from as many threads (``Backend.streams``):
            ``None`` or 1: one at a time; ``'auto'``: what pays off for callers that run calls
            side by side (OpenVINO on a CPU: 2 streams from 2 physical cores; other backends
            1); an integer > 1 needs a backend that runs streams (openvino).
        options: Backend-specific keyword options.
    """
    if name != 'auto':
        check_name(name)
    if streams is not None and check_streams(name, streams) != 1:
        options['streams'] = streams
    if precision not in PRECISION_CHOICES:
        raise ValueError(f'unknown precision {precision!r}; expected one of {PRECISION_CHOICES}')
    if not 0.0 < agreement_bound <= 1.0:
        LOG.warning('agreement_bound %s is outside (0, 1]: no candidate but fp32 can meet it',
                    agreement_bound)
    device = resolve_device(device)
    if precision == 'auto':
        return _create_auto(name, model, device, threads, input_size, agreement_bound,
                            guard_frames, options)
    backend = _create(name, model, device, precision, threads, input_size, options)
    backend.choice = PrecisionChoice(backend.name, backend.precision, 'precision set explicitly')
    return backend


def check_streams(name: str, streams: Union[int, str]) -> Union[int, str]:
    """``streams`` if backend ``name`` (or ``auto``) can run it, else ``ValueError`` naming
    what was expected."""
    check_stream_count(streams)
    if streams != 'auto' and name not in ('auto', *STREAMS_BACKENDS):
        raise ValueError(f'streams {streams}: the {name} backend runs one inference call at a '
                         f'time; streams need {" or ".join(STREAMS_BACKENDS)}')
    return streams


def _create(name: str, model: Any, device: str, precision: str, threads: Optional[int],
            input_size: Optional[Size], options: Dict[str, Any]) -> Backend:
    """An explicit precision: the backend ``name`` (or the ``auto`` backend rule)."""
    common = dict(device=device, precision=precision, threads=threads, input_size=input_size)
    if name != 'auto':
        cls = REGISTRY[name].load()
        if name not in STREAMS_BACKENDS:  # 'auto' streams: one at a time (check_streams)
            options = {k: v for k, v in options.items() if k != 'streams'}
        return cls(model, **common, **options)
    order, _ = candidates(model, device, precision)
    chosen, reason = choose_backend(model, device, precision)
    LOG.info('backend auto -> %s (%s)', chosen, reason)
    for i, candidate in enumerate(order):
        try:
            cls = REGISTRY[candidate].load()
            return cls(model, **common, **_accepted(cls, options, candidate))
        except (BackendUnavailableError, ImportError, OSError, RuntimeError) as exc:
            if i == len(order) - 1:
                raise
            LOG.warning('backend auto: %s failed to initialise (%s: %s); falling back to %s',
                        candidate, type(exc).__name__, exc, order[i + 1])
    raise AssertionError('unreachable')


def _accepted(cls: type, options: Dict[str, Any], name: str) -> Dict[str, Any]:
    """``options`` less those ``cls`` does not take (``auto`` may try several backends)."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return options
    dropped = sorted(k for k in options if k not in params)
    if dropped:
        LOG.info('backend auto: %s does not take %s; ignored', name, dropped)
    return {k: v for k, v in options.items() if k in params}


def _create_auto(name: str, model: Any, device: str, threads: Optional[int],
                 input_size: Optional[Size], bound: float, guard_frames: Any,
                 options: Dict[str, Any]) -> Backend:
    """``precision='auto'``: the first candidate of :func:`.auto_precision.plan` that loads
    and keeps ``bound`` agreement with fp32 on the guard frames, else fp32."""
    start = time.monotonic()
    kind = kind_of(model)
    features = cpu_features()
    passed: List[Tuple[str, str]] = []

    def fp32(reason: str, reference: Optional[Backend] = None) -> Backend:
        backend = reference or _create(name, model, device, 'fp32', threads, input_size,
                                       options)
        backend.choice = PrecisionChoice(backend.name, backend.precision, reason, bound=bound,
                                         passed_over=passed, cpu=features.describe(),
                                         seconds=time.monotonic() - start)
        LOG.info('precision auto -> %s', backend.choice.summary())
        return backend

    if kind in FIXED_PRECISION_KINDS:
        return fp32(f'the {kind} file fixes its precision')
    candidates = plan(device_class(device), features, REGISTRY['tensorrt'].available(),
                      device_class(device) == 'cuda' and _cuda_bf16())
    guard = None
    for candidate in candidates:
        if candidate is FP32:
            break
        why = _why_not(candidate, name, kind, device, input_size)
        if why is not None:
            passed.append((candidate.label, why))
            continue
        assert candidate.backend is not None
        runtime = f'{candidate.backend} {runtime_version(REGISTRY[candidate.backend].requires)}'
        try:
            if guard is None:
                guard = _guard(model, name, device, threads, input_size, options, features,
                               guard_frames)
            agreement = guard.cached(candidate, runtime)
            cached = agreement is not None
            if agreement is not None and agreement < bound:
                passed.append((candidate.label, f'agreement {100 * agreement:.2f}% < '
                               f'{100 * bound:.2f}% (cached)'))
                continue
            cls = REGISTRY[candidate.backend].load()
            backend = cls(model, device=device, precision=candidate.precision, threads=threads,
                          input_size=input_size,
                          **_accepted(cls, {**options, **dict(candidate.options)},
                                      candidate.backend))
            if agreement is None:
                agreement = guard.measure(candidate, runtime, backend)
        except (BackendUnavailableError, ImportError, OSError, RuntimeError, ValueError) as exc:
            passed.append((candidate.label, f'{type(exc).__name__}: {exc}'))
            continue
        if agreement >= bound:
            backend.choice = PrecisionChoice(
                backend.name, candidate.label.split(':', 1)[1],
                f'fastest native configuration on {device} ({features.describe()})',
                agreement=agreement, bound=bound, cached=cached, passed_over=passed,
                cpu=features.describe(), seconds=time.monotonic() - start)
            LOG.info('precision auto -> %s', backend.choice.summary())
            if guard.reference is not None:
                guard.reference.close()
            return backend
        backend.close()
        passed.append((candidate.label, f'agreement {100 * agreement:.2f}% < '
                       f'{100 * bound:.2f}%'))
    reason = ('no faster configuration passed' if passed else
              f'nothing faster runs natively on {device} ({features.describe()})')
    return fp32(reason, guard.reference if guard is not None else None)


def _why_not(candidate: Candidate, name: str, kind: str, device: str,
             input_size: Optional[Size]) -> Optional[str]:
    """Why ``candidate`` is passed over before trying it; ``None``: try it."""
    assert candidate.backend is not None
    if name != 'auto' and candidate.backend != name:
        return f'backend is set to {name}'
    why = REGISTRY[candidate.backend].why_not(kind, device, candidate.precision)
    if why is None and candidate.needs_fixed_size and input_size is None:
        why = 'needs a fixed input_size (the network size it is built for)'
    return why


def _guard(model: Any, name: str, device: str, threads: Optional[int],
           input_size: Optional[Size], options: Dict[str, Any], features: Any,
           frames: Any) -> Guard:
    from ...export.cache import model_digest
    return Guard(model_digest(model), input_size or GUARD_SIZE,
                 lambda: _create(name, model, device, 'fp32', threads, input_size, options),
                 features, frames)


def _cuda_bf16() -> bool:
    """Whether torch's CUDA device runs bf16 (False without torch or CUDA)."""
    if not cuda_available():
        return False
    import torch
    return bool(torch.cuda.is_bf16_supported())
