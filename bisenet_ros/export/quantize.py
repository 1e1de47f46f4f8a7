"""Static int8 quantization of an exported BiSeNet V2 for ONNX Runtime's CPU path.

QDQ format, per-channel int8 weights, uint8 activations calibrated (percentile or min/max) on
real images. The graph is first pre-processed (shape inference, Conv+BN folding), so ranges are
calibrated on the fused convolutions ORT will run.

Which layers run in int8 (``layers``):

* ``'compute'`` (the ONNX Runtime CPU default): the dense 3x3 stride-1 convolutions with at
  least 64 input channels, and their ReLUs. They carry 86% of BiSeNet V2's FLOPs (the 1024-wide
  head conv alone 39%) and are where int8 dot products (VNNI) pay: ~3-4x faster than fp32 in
  ONNX Runtime. Depthwise and 3-channel stem convolutions run *slower* in ORT's int8 kernels
  than in fp32 (a 768-channel depthwise conv 15 ms vs under 1 ms at 512x1024), quantizing the
  stride-2 convolutions too made the whole network slower (more float/int8 boundaries), and
  every quantized layer costs accuracy, so they stay float, as do the gating, pooling and
  classifier. Measured on the packaged model at 512x1024: 99.3% pixel agreement with fp32
  versus 98.8% with every convolution but the depthwise ones quantized.
* ``'all'``: every Conv, Add, Mul, Concat, pooling and ReLU except the classifier and what
  follows it (the explicit-quantization graph TensorRT fuses and runs in int8 throughout).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..image_files import list_images, read_images, spread_evenly
from ..preprocess import preprocess
from ..user_files import atomic_path

LOG = logging.getLogger(__name__)

#: Operators quantized with ``layers='all'``.
ALL_OPS = ('Conv', 'Add', 'Mul', 'Concat', 'MaxPool', 'AveragePool', 'Relu')
LAYER_CHOICES = ('compute', 'all')
#: ``layers='compute'``: dense 3x3 stride-1 convolutions with at least this many input channels.
MIN_INT8_CHANNELS = 64


def load_calibration_images(source: Any, limit: int = 32) -> List[np.ndarray]:
    """``(H, W, 3)`` uint8 BGR images from a folder path or a sequence of arrays.

    From a folder, ``limit`` files evenly spaced in name order (recordings are usually named
    in time order, so this spreads the calibration over the whole recording).
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f'calibration images: {folder} is not a folder')
        files = list_images(folder)
        images = read_images(spread_evenly(files, limit))
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
                  layers: Optional[str] = None, limit: int = 16,
                  reduce_range: Optional[bool] = None, method: str = 'percentile',
                  for_tensorrt: bool = False) -> Path:
    """Write a statically quantized copy of ``model_path``.

    Args:
        images: Folder or sequence of BGR uint8 images like the deployment camera's.
        input_size: ``(H, W)`` of the model input (images are resized to it).
        mean_std: RGB normalisation; ImageNet's when ``None``.
        layers: ``'compute'`` or ``'all'`` (see the module docstring); ``None``: ``'all'``
            for TensorRT, else ``'compute'``.
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

    from ..labels import IMAGENET_MEAN, IMAGENET_STD
    mean, std = mean_std or (IMAGENET_MEAN, IMAGENET_STD)
    if method not in ('percentile', 'minmax'):
        raise ValueError(f"calibration method must be 'percentile' or 'minmax', got {method!r}")
    layers = layers or ('all' if for_tensorrt else 'compute')
    if layers not in LAYER_CHOICES:
        raise ValueError(f'int8 layers must be one of {LAYER_CHOICES}, got {layers!r}')
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
        graph = onnx.load(str(prepared), load_external_data=False).graph
        if layers == 'all':
            selection: Dict[str, Any] = {'op_types_to_quantize': list(ALL_OPS),
                                         'nodes_to_exclude': _classifier_nodes(graph)}
        else:
            nodes = _compute_heavy_nodes(graph)
            if not nodes:
                raise ValueError(f'int8: {model_path} has no dense 3x3 convolution with '
                                 f'>= {MIN_INT8_CHANNELS} input channels to quantize; use '
                                 "layers='all'")
            selection = {'op_types_to_quantize': ['Conv', 'Relu'], 'nodes_to_quantize': nodes}
        activation = QuantType.QInt8 if for_tensorrt else QuantType.QUInt8

        staged = Path(tmp) / 'int8.onnx'  # moved over ``output`` only when complete

        def quantize(calibration: Any) -> None:
            quantize_static(str(prepared), str(staged), Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=activation, weight_type=QuantType.QInt8,
                            per_channel=True, reduce_range=reduce_range, **selection,
                            calibrate_method=calibration,
                            extra_options={'ActivationSymmetric': for_tensorrt,
                                           'WeightSymmetric': True, 'CalibPercentile': 99.999})

        if method == 'minmax':
            quantize(CalibrationMethod.MinMax)
        else:
            try:
                quantize(CalibrationMethod.Percentile)
            except ValueError as exc:  # numpy: a (near-)constant tensor has no histogram
                if 'bins' not in str(exc):
                    raise
                LOG.warning('int8: percentile calibration failed (%s); calibrating with '
                            'min/max instead', exc)
                method = 'minmax'
                quantize(CalibrationMethod.MinMax)
        _mark_int8(staged)
        with atomic_path(output) as temp:
            shutil.copyfile(staged, temp)
    LOG.info('int8: quantized %s -> %s (layers %s) on %d calibration images at %dx%d (%s, '
             'reduce_range %s)', model_path, output, layers, len(frames), *input_size, method,
             reduce_range)
    return output


#: Operators that only a quantized graph contains.
QUANTIZED_OPS = frozenset({'QuantizeLinear', 'DequantizeLinear', 'QLinearConv', 'ConvInteger',
                           'QLinearMatMul', 'MatMulInteger'})


def is_quantized(model_path: Union[str, Path]) -> bool:
    """Whether an ONNX file is already quantized (QDQ or QOperator int8 nodes)."""
    import onnx
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return any(node.op_type in QUANTIZED_OPS for node in graph.node)


def _mark_int8(path: Path) -> None:
    """Record ``precision: int8`` in the bisenet_ros metadata the quantizer carried over."""
    import onnx

    from .onnx_export import META_PREFIX
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    if META_PREFIX + 'precision' in props:
        props[META_PREFIX + 'precision'] = 'int8'
        onnx.helper.set_model_props(model, props)
        onnx.save(model, str(path))


def cpu_has_vnni() -> bool:
    """Whether the CPU has VNNI int8 dot products (AVX512-VNNI, AVX-VNNI or AMX-INT8), read at
    run time by :func:`bisenet_ros.cpu_features.cpu_features` (unknown: no)."""
    from ..cpu_features import cpu_features
    return cpu_features().fast_int8


def _classifier_nodes(graph: Any) -> List[str]:
    """Names of the last Conv (the classifier) and every node after it: they stay float.

    Logits span a wide range with small top-1/top-2 margins; 8-bit steps over that range would
    flip the argmax, while the classifier costs well under 1% of the network.
    """
    nodes = list(graph.node)
    last = max(i for i, node in enumerate(nodes) if node.op_type == 'Conv')
    return [node.name for node in nodes[last:] if node.name]


def _compute_heavy_nodes(graph: Any) -> List[str]:
    """Names of the dense 3x3 stride-1 Convs with >= :data:`MIN_INT8_CHANNELS` inputs, and of
    the ReLUs that read them (quantized together, ORT fuses them into one int8 conv)."""
    import onnx
    weights = {t.name: tuple(t.dims) for t in graph.initializer}
    readers: Dict[str, List[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    chosen: List[str] = []
    for node in graph.node:
        if node.op_type != 'Conv' or len(node.input) < 2 or not node.name:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        shape = weights.get(node.input[1])
        if shape is None or len(shape) != 4 or attrs.get('group', 1) != 1 or \
                shape[2:] != (3, 3) or any(v != 1 for v in attrs.get('strides', [1, 1])) or \
                shape[1] < MIN_INT8_CHANNELS:
            continue
        chosen.append(node.name)
        chosen.extend(r.name for r in readers.get(node.output[0], [])
                      if r.op_type == 'Relu' and r.name)
    return chosen
