"""The ONNX files a runtime backend runs when it is handed a PyTorch model (made on demand).

ONNX Runtime and OpenVINO run ONNX graphs; given a module or checkpoint they ask for the graph
here: exported at one input size with a dynamic batch and all three outputs (each runtime prunes
what it does not fetch), and for ``int8`` statically quantized on calibration images
(:mod:`.quantize`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple

RUNTIME_OUTPUTS = ('logits', 'labels', 'confidence')


def runtime_onnx(module: Any, folder: Path, size: Tuple[int, int], *, precision: str = 'fp32',
                 calibration_images: Any = None, int8_layers: Optional[str] = None) -> Path:
    """Export ``module`` into ``folder`` at ``size`` ``(H, W)`` for a runtime backend.

    ``precision``: ``'fp32'``; ``'fp16'`` (half weights and I/O); ``'int8'`` (fp32 export, then
    quantized on ``calibration_images``, see :func:`quantize_for_runtime`).
    """
    from .onnx_export import export_onnx
    path = Path(folder) / f'bisenet_{size[0]}x{size[1]}.onnx'
    export_onnx(module, path, size, dynamic_batch=True, outputs=RUNTIME_OUTPUTS,
                labels_dtype='uint8' if module.num_classes <= 256 else 'int32',
                fp16=precision == 'fp16', check=False)
    if precision != 'int8':
        return path
    return quantize_for_runtime(path, folder, size, calibration_images,
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
