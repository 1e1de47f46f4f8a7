"""``precision='auto'``: the fastest configuration this hardware runs natively that keeps label
agreement with fp32 at or above a bound.

The rule (the registry walks it, :func:`bisenet_ros.inference.backends.registry.create_backend`):

1. **Candidates per device, fastest first** (:func:`plan`), from the CPU features read at run
   time (:mod:`bisenet_ros.cpu_features`; ``BISENET_CPU_FLAGS`` forces a mask):

   * CPU with native bf16 (AVX512-BF16 or AMX-BF16): OpenVINO int8 + bf16 (also needs fast
     int8), OpenVINO bf16, torch bf16, then fp32;
   * CPU with fast int8 only (AVX512-VNNI, AVX-VNNI, AMX-INT8), or with AVX2 (int8 through
     16-bit multiply-adds, measured faster than fp32 there): OpenVINO int8, ONNX Runtime
     int8, then fp32;
   * any other CPU: fp32 alone, on the fastest fp32 runtime (``PREFERENCE`` of the registry,
     measured);
   * CUDA: TensorRT fp16 (where ``tensorrt`` imports), torch fp16, torch bf16 (where the GPU
     supports it), then fp32; an OpenVINO GPU: fp16, then fp32.

   int8 runs without ``input_size`` too: one dynamic-H/W graph calibrated at
   :data:`~bisenet_ros.export.artifacts.INT8_CALIBRATION_SIZE` serves every size. TensorRT
   engines are built for one size, so TensorRT needs ``input_size`` (else it is passed over,
   the reason says so). A candidate whose runtime is missing,
   or whose backend does not read the model, is passed over too.
2. **Agreement guard.** Each candidate but fp32 runs, at load, the demo frames packaged with
   bisenet_ros (:data:`GUARD_FRAMES` of them, at ``input_size`` or else at :data:`GUARD_SIZE`),
   and its labels are compared with the fp32 backend's on the same frames. It is taken when
   the fraction of equal labels is at least the bound (:data:`DEFAULT_BOUND`, configurable);
   else the next candidate is tried. Agreement needs no label names, so a user model with
   another label set or class count is guarded the same way on the same frames; a model that
   cannot run on them (an error) is passed over with that error, ending at fp32.
3. **Verdicts are cached** (artifact cache, folder ``auto``), keyed by model content, candidate,
   runtime versions, the reference runtime, the guard size and the CPU features, so a warm start
   only loads the chosen backend.

The result is a :class:`PrecisionChoice` (``Backend.choice``, ``Segmenter.choice``): what was
chosen, why, the agreement measured and every candidate passed over with its reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import importlib
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...cpu_features import CpuFeatures

LOG = logging.getLogger(__name__)

#: Default lower bound of label agreement with fp32 (fraction of equal labels).
DEFAULT_BOUND = 0.99
#: Network size the guard runs at when the segmenter runs each image at its own size.
GUARD_SIZE = (240, 320)
#: Packaged demo frames the guard compares on.
GUARD_FRAMES = 3


@dataclass(frozen=True)
class Candidate:
    """One configuration ``auto`` may pick.

    Attributes:
        backend: Registry name; ``None`` for the final fp32 step (the fastest fp32 runtime).
        precision: Backend precision.
        options: Extra backend options (e.g. ``float_precision='bf16'``).
    """

    backend: Optional[str]
    precision: str
    options: Tuple[Tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """``'openvino:int8+bf16'``, ``'torch:fp16'``, ``'fp32'``."""
        extra = dict(self.options).get('float_precision')
        text = self.precision + (f'+{extra}' if extra and extra != 'fp32' else '')
        return text if self.backend is None else f'{self.backend}:{text}'

    @property
    def needs_fixed_size(self) -> bool:
        """TensorRT engines are built for one network size."""
        return self.backend == 'tensorrt'


FP32 = Candidate(None, 'fp32')


@dataclass
class PrecisionChoice:
    """What ``precision='auto'`` (or an explicit precision) gave, for logs and diagnostics.

    Attributes:
        backend: Backend name chosen.
        precision: Its precision (``'int8+bf16'`` for int8 with bf16 float layers).
        reason: One sentence: why this one.
        agreement: Label agreement with fp32 measured on the packaged frames (``None``: not
            measured, fp32 itself or an explicit precision).
        bound: The agreement bound it had to meet.
        cached: The agreement came from the cache (measured on an earlier start).
        passed_over: ``(candidate, why)`` for each faster candidate not taken.
        cpu: The CPU features it decided by.
        seconds: Time spent choosing and loading.
    """

    backend: str
    precision: str
    reason: str
    agreement: Optional[float] = None
    bound: float = DEFAULT_BOUND
    cached: bool = False
    passed_over: List[Tuple[str, str]] = field(default_factory=list)
    cpu: str = ''
    seconds: float = 0.0

    def summary(self) -> str:
        """One line, e.g. ``'openvino bf16: agreement 99.83% >= 99.00% (...)'``."""
        text = f'{self.backend} {self.precision}: {self.reason}'
        if self.agreement is not None:
            text += (f'; agreement with fp32 {100 * self.agreement:.2f}% >= '
                     f'{100 * self.bound:.2f}%{" (cached)" if self.cached else ""}')
        if self.passed_over:
            text += '; passed over: ' + '; '.join(f'{c} ({w})' for c, w in self.passed_over)
        return text

    def as_dict(self) -> Dict[str, Any]:
        """Plain values (diagnostics key/values, JSON)."""
        return asdict(self)


def plan(device_class: str, features: CpuFeatures, tensorrt: bool = False,
         cuda_bf16: bool = False) -> List[Candidate]:
    """``auto``'s candidates for a device class (``'cpu'``, ``'cuda'``, ``'gpu'``), fastest
    first, always ending with :data:`FP32`."""
    bf16 = (('float_precision', 'bf16'),)
    found: List[Candidate] = []
    if device_class == 'cpu':
        if features.native_bf16:
            if features.fast_int8:
                found.append(Candidate('openvino', 'int8', bf16))
            found += [Candidate('openvino', 'bf16'), Candidate('torch', 'bf16')]
        elif features.fast_int8 or features.avx2_int8:
            found += [Candidate('openvino', 'int8'), Candidate('onnxruntime', 'int8')]
    elif device_class == 'cuda':
        if tensorrt:
            found.append(Candidate('tensorrt', 'fp16'))
        found.append(Candidate('torch', 'fp16'))
        if cuda_bf16:
            found.append(Candidate('torch', 'bf16'))
    elif device_class == 'gpu':
        found.append(Candidate('openvino', 'fp16'))
    return found + [FP32]


def runtime_version(package: str) -> str:
    """``package.__version__`` (``'?'`` when it has none)."""
    return str(getattr(importlib.import_module(package), '__version__', '?'))


class Guard:
    """Label agreement of candidates with the fp32 backend on the packaged demo frames.

    Args:
        model_id: Digest of the model's content (part of the verdict key).
        size: Network size ``(H, W)`` the frames are run at.
        reference: Makes the fp32 backend (called at most once, when a verdict is not cached).
        features: CPU features (part of the verdict key).
        frames: BGR uint8 images (default: :data:`GUARD_FRAMES` packaged demo frames).
    """

    def __init__(self, model_id: str, size: Tuple[int, int], reference: Callable[[], Any],
                 features: CpuFeatures, frames: Optional[Sequence[np.ndarray]] = None) -> None:
        from ...export.cache import ArtifactCache
        self.model_id, self.size, self.features = model_id, tuple(size), features
        self._make_reference = reference
        self._frames = frames
        self._batches: Optional[List[np.ndarray]] = None
        self._expected: Optional[List[np.ndarray]] = None
        self.reference: Any = None
        self.cache = ArtifactCache('auto')
        #: Agreement measurements made by this guard (a warm start makes none).
        self.measured = 0

    def batches(self) -> List[np.ndarray]:
        """The guard frames preprocessed: ``(1, 3, H, W)`` float32 each, at :attr:`size`."""
        if self._batches is None:
            from ...export.verify import sample_images
            from ...preprocess import preprocess
            frames = self._frames if self._frames is not None else \
                sample_images(None, GUARD_FRAMES)
            mean, std = self._reference_mean_std()
            self._batches = [preprocess([f], mean, std, bgr=True, input_size=self.size)[0]
                             for f in frames]
        return self._batches

    def _reference_mean_std(self) -> Tuple[Sequence[float], Sequence[float]]:
        """The fp32 backend's normalisation (a checkpoint names its label set only when
        loaded); ImageNet's when it has no label set."""
        from ...labels import IMAGENET_MEAN, IMAGENET_STD
        if self.reference is None:
            self.reference = self._make_reference()
        label_set = getattr(self.reference, 'label_set', None)
        if label_set is None:
            return IMAGENET_MEAN, IMAGENET_STD
        return label_set.mean, label_set.std

    def _labels(self, backend: Any) -> List[np.ndarray]:
        return [backend.infer(batch, ('labels',))['labels'][0] for batch in self.batches()]

    def key(self, candidate: Candidate, runtime: str) -> str:
        """The verdict key of ``candidate`` run by ``runtime`` (name and version)."""
        from ...export.cache import cache_key
        return cache_key(model=self.model_id, candidate=candidate.label, runtime=runtime,
                         size=list(self.size), frames=GUARD_FRAMES if self._frames is None
                         else 'given', reference='fp32',
                         bf16=self.features.native_bf16, int8=self.features.fast_int8)

    def cached(self, candidate: Candidate, runtime: str) -> Optional[float]:
        """The agreement measured on an earlier start, or ``None``."""
        record = self.cache.read_record(self.key(candidate, runtime))
        value = None if record is None else record.get('agreement')
        return float(value) if isinstance(value, (int, float)) else None

    def measure(self, candidate: Candidate, runtime: str, backend: Any) -> float:
        """Agreement of ``backend`` with fp32 on the frames (stored for later starts)."""
        if self._expected is None:
            if self.reference is None:
                self.reference = self._make_reference()
            self._expected = self._labels(self.reference)
        got = self._labels(backend)
        agreement = float(np.mean([np.mean(a == b) for a, b in zip(got, self._expected)]))
        self.measured += 1
        self.cache.write_record(self.key(candidate, runtime),
                                {'agreement': agreement, 'candidate': candidate.label,
                                 'runtime': runtime, 'size': list(self.size)})
        return agreement
