"""The ONNX files a runtime backend runs when it is handed a PyTorch model, kept in the per-user
artifact cache (:mod:`.cache`) so that a later start reuses them.

ONNX Runtime and OpenVINO run ONNX graphs; given a module or checkpoint they ask for the graph
here: exported with a dynamic batch and all three outputs (each runtime prunes what it does not
fetch), with dynamic H and W, or at one input size (and for ``int8`` statically quantized on
calibration images, :mod:`.quantize`: the packaged demo frames unless the user gives others; a
dynamic-H/W int8 graph is calibrated at :data:`INT8_CALIBRATION_SIZE` and runs at any size).
One implementation serves both runtimes (:class:`RuntimeArtifacts`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Optional, Tuple

from .cache import ArtifactCache, cache_key, model_digest

LOG = logging.getLogger(__name__)

RUNTIME_OUTPUTS = ('logits', 'labels', 'confidence')
#: Size a dynamic-H/W graph is traced at (any multiple of 32; small exports fast).
DYNAMIC_TRACE_SIZE = (128, 128)
#: Packaged demo frames an int8 graph is calibrated on when the user gives none.
PACKAGED_CALIBRATION_FRAMES = 16
#: Network size ``(H, W)`` a dynamic-H/W int8 graph is calibrated at: the packaged frames' own
#: 360x480, aligned to 32. Activation ranges barely depend on the size, so the graph keeps
#: >= 99.6 % label agreement with fp32 from 256x320 to 736x1280 (docs/backends.md).
INT8_CALIBRATION_SIZE = (352, 480)


def supports_dynamic_size(module: Any) -> bool:
    """Whether a dynamic-H/W graph of ``module``, run on inputs padded to multiples of 32,
    gives what the module gives: its size policy is ``pad`` (the default)."""
    policy = getattr(getattr(module, 'config', None), 'size_policy', None)
    return str(getattr(policy, 'value', policy)) == 'pad'


def export_runtime_onnx(module: Any, target: Path, size: Optional[Tuple[int, int]],
                        fp16: bool = False) -> Path:
    """Write ``module``'s runtime graph to ``target``: dynamic batch, the three outputs, at
    ``size`` ``(H, W)`` or with dynamic H and W (multiples of 32) when ``size`` is ``None``."""
    from .onnx_export import export_onnx
    export_onnx(module, target, size or DYNAMIC_TRACE_SIZE, dynamic_batch=True,
                dynamic_size=size is None, outputs=RUNTIME_OUTPUTS,
                labels_dtype='uint8' if module.num_classes <= 256 else 'int32',
                fp16=fp16, check=False)
    return Path(target)


def calibration_digest(images: Any) -> str:
    """What calibration images a cached int8 graph was made from: ``'packaged'`` (``None``),
    or a hash of a folder's file names, sizes and times, or of the arrays' bytes."""
    if images is None:
        return 'packaged'
    digest = hashlib.sha256()
    if isinstance(images, (str, os.PathLike)):
        from ..image_files import list_images
        for path in list_images(Path(images)):
            stat = path.stat()
            digest.update(f'{path.name}:{stat.st_size}:{stat.st_mtime_ns}'.encode())
    else:
        for image in images:
            digest.update(repr(getattr(image, 'shape', None)).encode())
            digest.update(memoryview(image).tobytes() if hasattr(image, 'shape') else
                          repr(image).encode())
    return digest.hexdigest()[:16]


def calibration_source(images: Any) -> Any:
    """``images``, or the packaged demo frames when ``None``."""
    if images is not None:
        return images
    from .verify import sample_images
    return sample_images(None, limit=PACKAGED_CALIBRATION_FRAMES)


class RuntimeArtifacts:
    """The cached ONNX files of one runtime (ONNX Runtime or OpenVINO) for one model.

    Args:
        runtime: Runtime name and version, part of every key (e.g. ``'onnxruntime 1.20.1'``).
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'``.
        calibration_images: int8: folder or images; ``None``: the packaged demo frames.
        int8_layers: int8: ``'compute'`` or ``'all'`` (see :mod:`.quantize`).
        cache: The artifact cache (default: the ``onnx`` folder of the user's cache).
    """

    def __init__(self, runtime: str, precision: str, calibration_images: Any = None,
                 int8_layers: Optional[str] = None,
                 cache: Optional[ArtifactCache] = None) -> None:
        self.runtime = runtime
        self.precision = precision
        self.calibration = calibration_images
        self.int8_layers = int8_layers
        self.cache = cache or ArtifactCache('onnx')
        self._digests: dict = {}

    def _model_digest(self, model: Any) -> str:
        """:func:`.cache.model_digest`, once per module object or file."""
        memo = id(model) if not isinstance(model, (str, os.PathLike)) else str(model)
        if memo not in self._digests:
            self._digests[memo] = model_digest(model)
        return self._digests[memo]

    def _key(self, model: str, size: Optional[Tuple[int, int]], **extra: Any) -> str:
        from importlib.metadata import PackageNotFoundError, version

        from ..cpu_features import cpu_features
        try:
            torch_version = version('torch')  # without importing torch (a warm start skips it)
        except PackageNotFoundError:
            torch_version = None
        int8 = self.precision == 'int8'
        return cache_key(model=model, runtime=self.runtime, torch=torch_version,
                         precision=self.precision,
                         size=None if size is None else list(size),
                         layers=self.int8_layers if int8 else None,
                         calibration=calibration_digest(self.calibration) if int8 else None,
                         calibrated_at=(list(INT8_CALIBRATION_SIZE) if int8 and size is None
                                        else None),
                         fast_int8=cpu_features().fast_int8 if int8 else None, **extra)

    def _what(self, size: Optional[Tuple[int, int]]) -> str:
        name = 'dynamic H, W' if size is None else f'{size[0]}x{size[1]}'
        return f'{self.precision} ONNX graph at {name} ({self.runtime})'

    def lookup(self, model_id: str, size: Optional[Tuple[int, int]]) -> Optional[Path]:
        """The cached graph of the model ``model_id`` at ``size``, or ``None`` (nothing built:
        a warm start finds its graph here without loading the PyTorch model)."""
        return self.cache.find(self._key(model_id, size), '.onnx', self._what(size),
                               check=_check_onnx)

    def for_module(self, module: Any, size: Optional[Tuple[int, int]],
                   model_id: Optional[str] = None) -> Path:
        """``module``'s graph at ``size`` (``None``: dynamic H, W) in this precision, from the
        cache or built now (export, then int8 calibration) with progress logged. ``model_id``
        keys it (default: the digest of the module's weights)."""
        key = self._key(model_id or self._model_digest(module), size)

        def build(target: Path) -> None:
            if self.precision != 'int8':
                export_runtime_onnx(module, target, size, fp16=self.precision == 'fp16')
                return
            with tempfile.TemporaryDirectory(prefix='bisenet_export_') as tmp:
                fp32 = export_runtime_onnx(module, Path(tmp) / 'fp32.onnx', size)
                quantize_into(fp32, target, size or INT8_CALIBRATION_SIZE, self.calibration,
                              getattr(module, 'label_set', None), self.int8_layers)

        return self.cache.get_or_build(key, '.onnx', build, self._what(size), check=_check_onnx)

    def quantized(self, path: Path, size: Optional[Tuple[int, int]], label_set: Any) -> Path:
        """An int8 (Q/DQ) copy of the fp32 ONNX file ``path`` with input ``size`` (``None``:
        dynamic H, W, calibrated at :data:`INT8_CALIBRATION_SIZE`), cached by its content."""
        calibrated = size or INT8_CALIBRATION_SIZE
        key = self._key(self._model_digest(path), size, source='onnx-file')
        return self.cache.get_or_build(
            key, '.onnx', lambda target: quantize_into(path, target, calibrated,
                                                       self.calibration, label_set,
                                                       self.int8_layers),
            f'int8 calibration of {Path(path).name} at {calibrated[0]}x{calibrated[1]} '
            f'({self.runtime})', check=_check_onnx)


def checkpoint_id(path: Path, label_set: Any) -> str:
    """The cache identity of a checkpoint file loaded with ``label_set`` (a name, a YAML path,
    a ``LabelSet`` or ``None``): its bytes' digest and the label set asked for."""
    token = label_set.to_dict() if hasattr(label_set, 'to_dict') else label_set
    return cache_key(checkpoint=model_digest(path), label_set=token)


def quantize_into(path: Path, target: Path, size: Tuple[int, int], calibration_images: Any,
                  label_set: Any, layers: Optional[str] = None) -> Path:
    """Write ``path`` quantized (Q/DQ) to ``target``, calibrated at ``size`` on
    ``calibration_images`` (``None``: the packaged demo frames), normalised with
    ``label_set``'s mean/std (ImageNet's when ``None``)."""
    from .quantize import quantize_int8
    mean_std = (label_set.mean, label_set.std) if label_set is not None else None
    return quantize_int8(path, target, calibration_source(calibration_images), size, mean_std,
                         layers=layers)


def _check_onnx(path: Path) -> None:
    """Raise unless ``path`` parses as an ONNX model (a cache entry that cannot be used)."""
    import onnx
    onnx.load(str(path), load_external_data=False)
