"""TensorRT build decisions and the engine cache, in plain Python (no tensorrt import).

* :func:`build_plan` maps (TensorRT version, precision) to how the engine must be built:
  TensorRT < 10.12 is weakly typed (builder flags FP16/INT8, an INT8 entropy calibrator);
  from 10.12 (where weak typing is deprecated) and in 11.x (where the flags are gone), the
  network is strongly typed and precision comes from the ONNX file itself: an fp16 export for
  fp16, a Q/DQ (explicitly quantized, symmetric int8) export for int8.
* :class:`EngineKey` is everything an engine is only valid for; the cache file name carries
  its digest and a JSON sidecar records it, so a stale engine (another TensorRT, another GPU,
  another precision or shape, another ONNX file) is detected and rebuilt instead of loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import hashlib
import json
from pathlib import Path
import re
from typing import Any, Dict, Optional, Tuple

#: First TensorRT release where weak typing (precision builder flags) is deprecated.
STRONG_TYPING_FROM = (10, 12)
#: Oldest TensorRT this backend supports (JetPack 6.0 ships 8.6).
MIN_VERSION = (8, 6)


def parse_version(text: str) -> Tuple[int, int]:
    """``'10.3.0.26'`` -> ``(10, 3)``; ``ValueError`` for anything else."""
    match = re.match(r'^(\d+)\.(\d+)', str(text))
    if not match:
        raise ValueError(f'cannot parse a TensorRT version from {text!r}')
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class BuildPlan:
    """How to build an engine of one precision with one TensorRT version.

    Attributes:
        strongly_typed: Create the network with the STRONGLY_TYPED flag.
        explicit_batch_flag: Pass EXPLICIT_BATCH when creating the network (TensorRT 8.x).
        builder_flags: Names of ``trt.BuilderFlag`` members to set (weak typing only).
        onnx_variant: ONNX export the parser must read: ``'fp32'``, ``'fp16'`` (half weights
            and I/O) or ``'qdq'`` (explicit int8 quantization).
        calibrator: Attach an INT8 calibrator (weakly typed int8).
    """

    strongly_typed: bool
    explicit_batch_flag: bool
    builder_flags: Tuple[str, ...]
    onnx_variant: str
    calibrator: bool


def build_plan(trt_version: str, precision: str) -> BuildPlan:
    """The :class:`BuildPlan` for ``precision`` (fp32/fp16/int8) under ``trt_version``."""
    version = parse_version(trt_version)
    if version < MIN_VERSION:
        raise ValueError(f'TensorRT {trt_version} is too old: bisenet_ros supports '
                         f'{MIN_VERSION[0]}.{MIN_VERSION[1]} and newer')
    if precision not in ('fp32', 'fp16', 'int8'):
        raise ValueError(f'TensorRT builds fp32, fp16 or int8 engines, not {precision!r}')
    explicit_batch = version[0] < 10
    if version >= STRONG_TYPING_FROM:
        variant = {'fp32': 'fp32', 'fp16': 'fp16', 'int8': 'qdq'}[precision]
        return BuildPlan(True, explicit_batch, (), variant, False)
    flags = {'fp32': (), 'fp16': ('FP16',), 'int8': ('INT8', 'FP16')}[precision]
    return BuildPlan(False, explicit_batch, flags, 'fp32', precision == 'int8')


@dataclass(frozen=True)
class EngineKey:
    """What a serialized engine is valid for.

    Attributes:
        trt_version: ``tensorrt.__version__`` at build time.
        compute_capability: GPU ``'major.minor'`` (engines are not portable across them).
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'``.
        input_shape: ``(max batch, 3, H, W)`` of the optimisation profile.
        dynamic_batch: Whether batch sizes 1..max are accepted.
        onnx_sha256: Digest of the ONNX file the engine was built from (first 16 hex digits).
    """

    trt_version: str
    compute_capability: str
    precision: str
    input_shape: Tuple[int, int, int, int]
    dynamic_batch: bool
    onnx_sha256: str

    def digest(self) -> str:
        """12 hex digits identifying the key (used in cache file names)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data['input_shape'] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> 'EngineKey':
        return cls(trt_version=str(data['trt_version']),
                   compute_capability=str(data['compute_capability']),
                   precision=str(data['precision']),
                   input_shape=tuple(int(v) for v in data['input_shape']),  # type: ignore
                   dynamic_batch=bool(data['dynamic_batch']),
                   onnx_sha256=str(data['onnx_sha256']))


def mismatches(stored: EngineKey, current: EngineKey) -> Dict[str, Tuple[Any, Any]]:
    """``{field: (stored, current)}`` for every field that differs (empty: engine is valid)."""
    a, b = stored.to_dict(), current.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def file_sha256(path: Path) -> str:
    """First 16 hex digits of a file's SHA-256."""
    from .cache import file_digest
    return file_digest(path)[:16]


def cache_paths(cache_dir: Path, stem: str, key: EngineKey) -> Tuple[Path, Path]:
    """``(engine, sidecar json)`` paths for ``key`` in ``cache_dir``."""
    name = f'{stem}_{key.precision}_{key.input_shape[2]}x{key.input_shape[3]}_{key.digest()}'
    return cache_dir / f'{name}.engine', cache_dir / f'{name}.json'


def sidecar_path(engine_path: Path) -> Path:
    """The JSON sidecar beside an engine file."""
    return engine_path.with_suffix('.json')


def read_sidecar(engine_path: Path) -> Optional[Dict[str, Any]]:
    """The sidecar's content, or ``None`` when it is missing or unreadable."""
    path = sidecar_path(engine_path)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_sidecar(engine_path: Path, key: EngineKey, extra: Dict[str, Any]) -> Path:
    """Write ``{'key': ..., **extra}`` beside the engine (atomically)."""
    from ..user_files import write_atomic
    return write_atomic(sidecar_path(engine_path),
                        json.dumps({'key': key.to_dict(), **extra}, indent=1, sort_keys=True))
