"""Static int8 quantization of an exported BiSeNet V2 for ONNX Runtime's CPU path.

QDQ format, per-channel int8 weights, uint8 activations calibrated (min/max) on real images.
The graph is first pre-processed (shape inference, Conv+BN folding), so ranges are calibrated
on the fused convolutions ORT will run. The classifier and everything after it stay float.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..preprocess import preprocess

LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.tif', '.tiff', '.webp')
#: Operators quantized by default: everything that carries the bulk of the work.
DEFAULT_OPS = ('Conv', 'Add', 'Mul', 'Concat', 'MaxPool', 'AveragePool', 'Relu')


def load_calibration_images(source: Any, limit: int = 32) -> List[np.ndarray]:
    """``(H, W, 3)`` uint8 BGR images from a folder path or a sequence of arrays."""
    if isinstance(source, (str, os.PathLike)):
        import cv2
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f'calibration images: {folder} is not a folder')
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files[:limit]]
        images = [img for img in images if img is not None]
        if not images:
            raise FileNotFoundError(f'calibration images: no readable images in {folder}')
        return images
    images = list(source)[:limit]
    if not images:
        raise ValueError('calibration images: the list is empty')
    return images


def quantize_int8(model_path: Union[str, Path], output_path: Union[str, Path], images: Any,
                  input_size: Tuple[int, int],
                  mean_std: Optional[Tuple[Sequence[float], Sequence[float]]] = None,
                  op_types: Sequence[str] = DEFAULT_OPS, limit: int = 16,
                  reduce_range: Optional[bool] = None, method: str = 'percentile',
                  for_tensorrt: bool = False) -> Path:
    """Write a statically quantized copy of ``model_path``.

    Args:
        images: Folder or sequence of BGR uint8 images like the deployment camera's.
        input_size: ``(H, W)`` of the model input (images are resized to it).
        mean_std: RGB normalisation; ImageNet's when ``None``.
        op_types: ONNX operator types to quantize.
        limit: At most this many calibration images.
        reduce_range: 7-bit weights, for CPUs without VNNI, where the u8*s8 pair sums of the
            AVX2 kernels saturate int16; ``None``: on exactly when this CPU lacks VNNI.
        method: Calibration ``'percentile'`` (99.999%, robust to outliers; the default) or
            ``'minmax'`` (faster to calibrate).
        for_tensorrt: Symmetric int8 activations and weights (what TensorRT's explicit
            quantization accepts) instead of ORT's faster uint8 activations.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, quantize_static, QuantType)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ...labels import IMAGENET_MEAN, IMAGENET_STD
    mean, std = mean_std or (IMAGENET_MEAN, IMAGENET_STD)
    if method not in ('percentile', 'minmax'):
        raise ValueError(f"calibration method must be 'percentile' or 'minmax', got {method!r}")
    if reduce_range is None:
        reduce_range = not for_tensorrt and not cpu_has_vnni()
    frames = load_calibration_images(images, limit)
    import onnx
    input_name = onnx.load(str(model_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(frames)

        def get_next(self):
            frame = next(self._items, None)
            if frame is None:
                return None
            batch, _ = preprocess([frame], mean, std, bgr=True, input_size=input_size)
            return {input_name: batch}

    output = Path(output_path)
    with tempfile.TemporaryDirectory(prefix='bisenet_quant_') as tmp:
        prepared = Path(tmp) / 'prepared.onnx'
        quant_pre_process(str(model_path), str(prepared), skip_symbolic_shape=True)
        classifier = _classifier_nodes(prepared)
        activation = QuantType.QInt8 if for_tensorrt else QuantType.QUInt8
        quantize_static(str(prepared), str(output), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=activation, weight_type=QuantType.QInt8,
                        per_channel=True, reduce_range=reduce_range,
                        op_types_to_quantize=list(op_types), nodes_to_exclude=classifier,
                        calibrate_method=CalibrationMethod.Percentile if method == 'percentile'
                        else CalibrationMethod.MinMax,
                        extra_options={'ActivationSymmetric': for_tensorrt,
                                       'WeightSymmetric': True, 'CalibPercentile': 99.999})
    LOG.info('int8: quantized %s -> %s on %d calibration images at %dx%d (%s, reduce_range %s)',
             model_path, output, len(frames), *input_size, method, reduce_range)
    return output


def cpu_has_vnni() -> bool:
    """Whether the CPU has VNNI int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    try:
        text = Path('/proc/cpuinfo').read_text()
    except OSError:
        return True  # unknown (not Linux): assume a modern CPU, keep full range
    flags = set(text.split())
    return bool(flags & {'avx512_vnni', 'avx_vnni', 'amx_int8'})


def _classifier_nodes(model_path: Path) -> List[str]:
    """Names of the last Conv (the classifier) and every node after it: they stay float.

    Logits span a wide range with small top-1/top-2 margins; 8-bit steps over that range would
    flip the argmax, while the classifier costs well under 1% of the network.
    """
    import onnx
    nodes = list(onnx.load(str(model_path), load_external_data=False).graph.node)
    last = max(i for i, node in enumerate(nodes) if node.op_type == 'Conv')
    return [node.name for node in nodes[last:] if node.name]
