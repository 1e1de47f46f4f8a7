"""Identify a model once: what it is (module, checkpoint, ONNX, quantized ONNX, TensorRT engine,
OpenVINO IR) and what it says about itself (input size, batch, precision, label set, outputs).

Every backend starts from :func:`identify`; :func:`load_module` turns a module or checkpoint path
into the ``BiSeNetV2`` module the torch backend runs and the exporters convert. Reading a file
here never builds anything: making artifacts is :mod:`bisenet_ros.export`'s job.

Identify a model once: :func:`identify` returns a :class:`ModelFile` and takes one back as it
is, and :func:`kind_of` reads a :class:`ModelFile`'s kind, so a caller that identified the model
(the Segmenter) hands the description down and no layer stats or parses the file again. A
path is checked through :mod:`bisenet_ros.user_files` (a regular file, every OS error a
refusal naming the path, the first bytes read within a time bound: a file whose read blocks
cannot wedge the loader), and a file that is not the model it claims to be (a truncated or
random ``.onnx``) is one :class:`~bisenet_ros.user_files.UserFileError` line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

#: File suffixes of serialized TensorRT engines.
ENGINE_SUFFIXES = ('.engine', '.plan', '.trt')
#: File suffixes of PyTorch checkpoints.
#: Suffix of an OpenVINO IR topology file (the weights are the ``.bin`` beside it).
OPENVINO_IR_SUFFIX = '.xml'
#: What :func:`identify` can find.
KINDS = ('module', 'checkpoint', 'onnx', 'onnx-int8', 'engine', 'openvino-ir')
Size = Tuple[int, int]


@dataclass
class ModelFile:
    """What a model is, as far as can be told without running it.

    Attributes:
        kind: One of :data:`KINDS` (``'onnx-int8'``: an ONNX file with int8 nodes already).
        source: The module, or the path as given.
        path: The file (``None`` for a module).
        input_size: ``(H, W)`` a file takes, ``None`` when any size works or it is unknown.
        batch: The fixed batch of a file, ``None`` when dynamic or unknown.
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'`` as recorded in the file (``'fp32'`` for
            modules and checkpoints).
        num_classes: Class count when the file records it.
        label_set: The ``LabelSet`` the file records, if any.
        outputs: Output names of a file (``()`` when unknown).
        metadata: The raw ``bisenet_ros.*`` metadata (ONNX) or engine sidecar.
    """

    kind: str
    source: Any
    path: Optional[Path] = None
    input_size: Optional[Size] = None
    batch: Optional[int] = None
    precision: str = 'fp32'
    num_classes: Optional[int] = None
    label_set: Any = None
    outputs: Tuple[str, ...] = ()
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        """Whether the model is a file (every kind but ``'module'``)."""
        return self.path is not None

    def describe(self) -> str:
        """One line for logs and errors."""
        where = self.path if self.path is not None else type(self.source).__name__
        size = '' if self.input_size is None else f', {self.input_size[0]}x{self.input_size[1]}'
        return f'{self.kind} {where} ({self.precision}{size})'


def kind_of(model: Any) -> str:
    """The kind of ``model`` from its type or file suffix alone (no file is read); a
    :class:`ModelFile`'s own kind.

    Raises ``ValueError`` for an object that is neither a module nor a path.
    """
    if isinstance(model, ModelFile):
        return model.kind
    if not isinstance(model, (str, os.PathLike)):
        if hasattr(model, 'forward') and hasattr(model, 'num_classes'):
            return 'module'
        raise ValueError(f'model: expected a BiSeNetV2 module or a file path, got '
                         f'{type(model).__name__}')
    suffix = Path(model).suffix.lower()
    if suffix in ENGINE_SUFFIXES:
        return 'engine'
    if suffix == '.onnx':
        return 'onnx'
    if suffix == OPENVINO_IR_SUFFIX:
        return 'openvino-ir'
    return 'checkpoint'  # .pt/.pth, or any other name: the checkpoint reader says what is wrong


#: Bytes of a model file read (within the time bound) before any parser sees the file.
PROBE_BYTES = 1 << 16


def identify(model: Any) -> ModelFile:
    """Identify ``model`` (module, path, or a :class:`ModelFile` already, returned as it is)
    and read what a file records about itself.

    Raises :class:`~bisenet_ros.user_files.MissingFileError` (a ``FileNotFoundError``) for a
    missing file, :class:`~bisenet_ros.user_files.UserFileError` (a ``ValueError``) for any
    other unusable path or unreadable file, ``ValueError`` for an unusable object.
    """
    if isinstance(model, ModelFile):
        return model
    kind = kind_of(model)
    if kind == 'module':
        return ModelFile(kind, model, num_classes=int(model.num_classes),
                         label_set=getattr(model, 'label_set', None))
    from ..user_files import check_file, MAX_MODEL_BYTES, read_head, UserFileError
    path = Path(model)
    size = check_file(model, 'model file').st_size
    if size > MAX_MODEL_BYTES:
        raise UserFileError(f'model file {path}: {size} bytes, more than the '
                            f'{MAX_MODEL_BYTES} allowed')
    read_head(model, 'model file', PROBE_BYTES)  # answers within the time bound
    if kind == 'onnx':
        return _identify_onnx(path)
    if kind == 'engine':
        return _identify_engine(path)
    return ModelFile(kind, model, path=path)


def _identify_onnx(path: Path) -> ModelFile:
    from ..labels import LabelSetError
    from ..user_files import UserFileError
    try:
        return _read_onnx(path)
    except (UserFileError, LabelSetError):
        raise
    except Exception as exc:  # protobuf's DecodeError, onnx's own errors, a truncated file
        if isinstance(exc, ValueError) and str(exc).startswith(f'model file {path}: ') \
                and '\n' not in str(exc):
            raise  # this package's own reason (ModelCheckError, ...), one line naming the file
        raise _not_onnx(path, exc) from None


def _not_onnx(path: Path, exc: BaseException) -> Exception:
    from ..limits import shorten
    from ..user_files import UserFileError
    first = (str(exc).strip().splitlines() or [''])[0]
    return UserFileError(f'model file {path}: not a readable ONNX model '
                         f'({type(exc).__name__}: {shorten(first, 120)})')


def _read_onnx(path: Path) -> ModelFile:
    from ..export.onnx_export import onnx_shapes, read_metadata
    from ..export.quantize import is_quantized
    from ..labels import LabelSet
    from .model_check import check_layout
    meta = read_metadata(path)
    named, outputs = onnx_shapes(path)
    check_layout(named, outputs, f'model file {path}')
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in named)
    quantized = is_quantized(path)
    label_set = LabelSet.from_dict(meta['label_set'], source=f'metadata of {path}') \
        if meta.get('label_set') else None
    return ModelFile('onnx-int8' if quantized else 'onnx', path, path=path,
                     input_size=(int(shape[2]), int(shape[3])) if shape[2] and shape[3] else None,
                     batch=int(shape[0]) if shape[0] else None,
                     precision='int8' if quantized else str(meta.get('precision', 'fp32')),
                     num_classes=int(meta['num_classes']) if meta.get('num_classes') else None,
                     label_set=label_set, outputs=tuple(outputs), metadata=meta)


def _identify_engine(path: Path) -> ModelFile:
    from ..export.tensorrt_plan import read_sidecar
    from ..labels import LabelSet
    side = read_sidecar(path) or {}
    key = side.get('key') or {}
    shape = key.get('input_shape')
    label_set = LabelSet.from_dict(side['label_set'], source=f'sidecar of {path}') \
        if side.get('label_set') else None
    return ModelFile('engine', path, path=path,
                     input_size=(int(shape[2]), int(shape[3])) if shape else None,
                     batch=None if key.get('dynamic_batch', True) or not shape else int(shape[0]),
                     precision=str(key.get('precision', 'fp32')), label_set=label_set,
                     num_classes=label_set.num_classes if label_set is not None else None,
                     metadata=side)


def load_module(model: Any, label_set: Any = None) -> Any:
    """The ``BiSeNetV2`` module of a module or checkpoint path (imports torch).

    Raises ``ValueError`` naming the backend to use when ``model`` is an exported file.
    """
    info = model if isinstance(model, ModelFile) else identify(model)
    if info.kind == 'module':
        return info.source
    if info.kind != 'checkpoint':
        raise ValueError(f'{info.path} is a {info.kind} file, not a PyTorch checkpoint or '
                         'module; run it with a backend that reads it (see bisenet_ros.'
                         'inference.backends.registry)')
    from ..model.checkpoint import load_model
    return load_model(info.path, label_set=label_set)
