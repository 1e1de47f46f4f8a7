"""The ONNX files a runtime backend runs when it is handed a PyTorch model (made on demand).

ONNX Runtime and OpenVINO run ONNX graphs; given a module or checkpoint they ask for the graph
here: exported with a dynamic batch and all three outputs (each runtime prunes what it does not
fetch), with dynamic H and W, or at one input size (and for ``int8`` statically quantized on
calibration images, :mod:`.quantize`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

RUNTIME_OUTPUTS = ('logits', 'labels', 'confidence')
#: Size a dynamic-H/W graph is traced at (any multiple of 32; small exports fast).
DYNAMIC_TRACE_SIZE = (128, 128)


def supports_dynamic_size(module: Any) -> bool:
    """Whether a dynamic-H/W graph of ``module``, run on inputs padded to multiples of 32,
    gives what the module gives: its size policy is ``pad`` (the default)."""
    policy = getattr(getattr(module, 'config', None), 'size_policy', None)
    return str(getattr(policy, 'value', policy)) == 'pad'


def runtime_onnx(module: Any, folder: Path, size: Optional[Tuple[int, int]], *,
                 precision: str = 'fp32', calibration_images: Any = None,
                 int8_layers: Optional[str] = None) -> Path:
    """Export ``module`` into ``folder`` at ``size`` ``(H, W)`` for a runtime backend.

    ``size`` ``None``: one graph with dynamic H and W (multiples of 32, see
    :func:`~.onnx_export.export_onnx`), for every input size. ``precision``: ``'fp32'``;
    ``'fp16'`` (half weights and I/O); ``'int8'`` (fp32 export at ``size``, then quantized on
    ``calibration_images``, see :func:`quantize_for_runtime`).
    """
    from .onnx_export import export_onnx
    if size is None and precision == 'int8':
        raise ValueError('int8 needs a fixed network size (the calibrated one)')
    name = 'dynamic' if size is None else f'{size[0]}x{size[1]}'
    path = Path(folder) / f'bisenet_{name}.onnx'
    export_onnx(module, path, size or DYNAMIC_TRACE_SIZE, dynamic_batch=True,
                dynamic_size=size is None, outputs=RUNTIME_OUTPUTS,
                labels_dtype='uint8' if module.num_classes <= 256 else 'int32',
                fp16=precision == 'fp16', check=False)
    if precision != 'int8':
        return path
    return quantize_for_runtime(path, folder, size, calibration_images,  # type: ignore[arg-type]
                                getattr(module, 'label_set', None), int8_layers)


def quantize_for_runtime(path: Path, folder: Path, size: Tuple[int, int], calibration_images: Any,
                         label_set: Any, layers: Optional[str] = None) -> Path:
    """``<folder>/<stem>_int8.onnx``: ``path`` quantized (QDQ) on ``calibration_images`` at
    ``size``, normalised with ``label_set``'s mean/std (ImageNet's when ``None``)."""
    from .quantize import quantize_int8
    if calibration_images is None:
        raise ValueError('int8 needs calibration_images (a folder or a list of (H, W, 3) uint8 '
                         'BGR images like the ones you segment)')
    target = Path(folder) / f'{Path(path).stem}_int8.onnx'
    mean_std = (label_set.mean, label_set.std) if label_set is not None else None
    return quantize_int8(path, target, calibration_images, size, mean_std, layers=layers)
