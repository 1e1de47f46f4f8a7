"""Export a BiSeNet V2 module to ONNX at a fixed input size, with the outputs inference needs.

The model pads H, W to a multiple of 32 inside ``forward``; the exporter records that padding
for the traced size, so an ONNX file takes exactly the ``(H, W)`` it was exported at (a multiple
of 32 avoids the padding cost). The batch axis can be dynamic; so can H and W
(``dynamic_size``, traced at a multiple of 32): such a graph takes any multiple of 32, and its
runner pads other sizes bottom/right with zeros and crops the outputs (what the model's ``pad``
size policy does inside).

Outputs (any subset, in this order): ``logits`` float ``(N, C, H, W)``, ``labels`` ``(N, H, W)``
(ArgMax in the graph, cast to uint8 or int32), ``confidence`` float ``(N, H, W)`` (max softmax).
The label set, input size and outputs are stored in the model's metadata (``bisenet_ros.*``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union
import warnings

from ..limits import LimitError, work_problem
from ..user_files import atomic_path

LOG = logging.getLogger(__name__)

EXPORT_OUTPUTS = ('logits', 'labels', 'confidence')
LABEL_DTYPES = ('uint8', 'int32')
META_PREFIX = 'bisenet_ros.'


def _wrapper(model: Any, outputs: Sequence[str], labels_dtype: str, half: bool):
    import torch

    class ExportHead(torch.nn.Module):
        """The model plus the requested output heads (argmax / max softmax in the graph)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor):
            logits = self.model(x)
            result = []
            for name in outputs:
                if name == 'logits':
                    result.append(logits)
                elif name == 'labels':
                    ids = torch.argmax(logits, dim=1)
                    result.append(ids.to(torch.uint8 if labels_dtype == 'uint8'
                                         else torch.int32))
                else:
                    result.append(torch.softmax(logits.float(), dim=1).amax(dim=1)
                                  .to(logits.dtype))
            return tuple(result)

    head = ExportHead().eval()
    return head.half() if half else head


def export_onnx(model: Any, path: Union[str, 'os.PathLike[str]'],
                input_size: Sequence[int], *, batch: int = 1, dynamic_batch: bool = False,
                dynamic_size: bool = False, outputs: Sequence[str] = ('logits',),
                labels_dtype: str = 'uint8',
                fp16: bool = False, opset: int = 17, label_set: Any = None,
                check: bool = True) -> Path:
    """Write ``model`` as ONNX.

    Args:
        model: A ``BiSeNetV2`` module (eval mode is set on a wrapper; weights are not copied).
        path: Output ``.onnx`` file (parent directories are created).
        input_size: ``(H, W)`` the file will take.
        batch: Batch size traced (the fixed batch unless ``dynamic_batch``).
        dynamic_size: H and W dynamic (multiples of 32; ``input_size`` is then only traced).
        outputs: Subset of :data:`EXPORT_OUTPUTS`.
        labels_dtype: ``'uint8'`` (<= 256 classes) or ``'int32'`` (TensorRT-friendly).
        fp16: Export with half weights and fp16 input/outputs (for strongly typed TensorRT).
        label_set: ``LabelSet`` to record in the metadata (default: ``model.label_set``).
        check: Run ``onnx.checker.check_model`` on the result.

    Returns:
        The written path.
    """
    import copy

    import onnx
    import torch

    height, width = (int(v) for v in input_size)
    problem = work_problem(height, width, batch, int(model.num_classes),
                           'confidence' in tuple(outputs))
    if batch < 1 or problem:
        raise LimitError(f'export: {problem or f"batch must be >= 1, got {batch}"}')
    wanted = tuple(outputs)
    duplicated = len(set(wanted)) != len(wanted)
    if not wanted or duplicated or any(o not in EXPORT_OUTPUTS for o in wanted):
        raise ValueError(f'outputs must be distinct names from {EXPORT_OUTPUTS}, got {outputs!r}')
    if labels_dtype not in LABEL_DTYPES:
        raise ValueError(f'labels_dtype must be one of {LABEL_DTYPES}, got {labels_dtype!r}')
    if labels_dtype == 'uint8' and 'labels' in wanted and model.num_classes > 256:
        raise ValueError(f'{model.num_classes} classes do not fit uint8 labels; use int32')
    if dynamic_size and (height % 32 or width % 32):
        raise ValueError(f'dynamic_size: trace at a multiple of 32, got {height}x{width}')
    if height % 32 or width % 32:
        LOG.info('export at %dx%d: not a multiple of 32, the graph pads to %dx%d inside',
                 height, width, -(-height // 32) * 32, -(-width // 32) * 32)
    label_set = label_set if label_set is not None else getattr(model, 'label_set', None)
    source = copy.deepcopy(model) if fp16 else model
    was_training = model.training
    head = _wrapper(source.eval(), wanted, labels_dtype, fp16)
    dtype = torch.float16 if fp16 else torch.float32
    dummy = torch.zeros(batch, 3, height, width, dtype=dtype)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    dynamic_axes: Optional[Dict[str, Dict[int, str]]] = None
    if dynamic_batch or dynamic_size:
        dynamic_axes = {}
        for name in ('input',) + wanted:
            rank = 3 if name in ('labels', 'confidence') else 4
            axes = {0: 'batch'} if dynamic_batch else {}
            if dynamic_size:
                axes.update({rank - 2: 'height', rank - 1: 'width'})
            dynamic_axes[name] = axes
    # Written to a temp file beside the target, which replaces it only once complete: a failed
    # export (disk full, file-size limit, a checker error) leaves a previous file intact.
    with atomic_path(target) as temp:
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter('ignore')
                torch.onnx.export(head, (dummy,), str(temp), dynamo=False, opset_version=opset,
                                  input_names=['input'], output_names=list(wanted),
                                  dynamic_axes=dynamic_axes, do_constant_folding=True)
        finally:
            model.train(was_training)
        onnx_model = onnx.load(str(temp))
        if not dynamic_size:
            _set_output_shapes(onnx_model, 'batch' if dynamic_batch else batch, height, width,
                               int(model.num_classes))
        meta = {'input_size': json.dumps([height, width]),
                'outputs': json.dumps(list(wanted)), 'batch': json.dumps(int(batch)),
                'dynamic_batch': json.dumps(bool(dynamic_batch)),
                'dynamic_size': json.dumps(bool(dynamic_size)),
                'num_classes': str(int(model.num_classes)),
                'precision': 'fp16' if fp16 else 'fp32'}
        if label_set is not None:
            meta['label_set'] = json.dumps(label_set.to_dict())
        onnx.helper.set_model_props(onnx_model, {META_PREFIX + k: v for k, v in meta.items()})
        if check:
            onnx.checker.check_model(onnx_model)
            # the stated output shapes must agree with what the graph computes
            onnx.shape_inference.infer_shapes(onnx_model, check_type=True, strict_mode=True)
        onnx.save(onnx_model, str(temp))
    LOG.info('exported %s: input %sx%dx%d (%s), outputs %s', target,
             'N' if dynamic_batch else batch, height, width, 'fp16' if fp16 else 'fp32', wanted)
    return target


def _set_output_shapes(onnx_model: Any, batch: Union[int, str], height: int, width: int,
                       num_classes: int) -> None:
    """Write the fixed output shapes into ``onnx_model``'s graph outputs (in place).

    At a size that is not a multiple of 32 the graph pads, runs and crops back with a Slice
    whose output the exporter leaves symbolic (``Slicelogits_dim_2``); the sizes are known
    (the traced ones), so they are stated: ``logits`` ``(batch, C, H, W)``, ``labels`` and
    ``confidence`` ``(batch, H, W)``; ``batch`` is an int, or the name of a dynamic axis.
    """
    for output in onnx_model.graph.output:
        dims = output.type.tensor_type.shape.dim
        wanted = [batch] + ([num_classes] if len(dims) == 4 else []) + [height, width]
        if len(dims) != len(wanted):
            raise ValueError(f'export: output {output.name} has rank {len(dims)}, expected '
                             f'{len(wanted)}')
        for dim, value in zip(dims, wanted):
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = value


def read_metadata(onnx_path: Union[str, 'os.PathLike[str]']) -> Dict[str, Any]:
    """The ``bisenet_ros.*`` metadata of an exported file (decoded), ``{}`` for foreign files."""
    import onnx
    model = onnx.load(str(onnx_path), load_external_data=False)
    result: Dict[str, Any] = {}
    for prop in model.metadata_props:
        if prop.key.startswith(META_PREFIX):
            key = prop.key[len(META_PREFIX):]
            result[key] = prop.value if key in ('num_classes', 'precision') else \
                json.loads(prop.value)
    return result


def onnx_io(onnx_path: Union[str, 'os.PathLike[str]']
            ) -> Tuple[Tuple[Optional[int], ...], Dict[str, int]]:
    """Input shape (``None`` for symbolic dims) and ``{output name: elem_type}`` of a file."""
    import onnx
    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField('dim_value') else None for d in dims)
    return shape, {o.name: o.type.tensor_type.elem_type for o in model.graph.output}


def onnx_shapes(path: Union[str, 'os.PathLike[str]']
                ) -> Tuple[Tuple[Any, ...], Dict[str, Tuple[Any, ...]]]:
    """Input shape and ``{output name: shape}`` of an ONNX file; a dimension is an int, its
    symbolic name, or ``None`` when unknown."""
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph

    def shape(value: Any) -> Tuple[Any, ...]:
        return tuple(d.dim_value if d.HasField('dim_value')
                     else (d.dim_param or None) for d in value.type.tensor_type.shape.dim)
    if not graph.input:
        raise ValueError(f'model file {path}: the graph has no input')
    return shape(graph.input[0]), {o.name: shape(o) for o in graph.output}


def keep_outputs(model: Any, outputs: Sequence[str]) -> Any:
    """A copy of ``model`` (an ``onnx.ModelProto``) that computes only ``outputs``.

    Nodes and initializers that feed none of ``outputs`` are dropped, so a runtime does not
    spend time on results nobody asked for (ONNX Runtime runs every node of a graph whatever
    the fetched outputs: at 512x1024, labels fetched from the three-output graph took 1.4x the
    time of the labels-only graph).
    Graphs with control flow (If/Loop/Scan subgraphs may read outer values) are only
    stripped of their unwanted graph outputs.
    """
    import onnx
    graph = model.graph
    names = [o.name for o in graph.output]
    missing = [o for o in outputs if o not in names]
    if missing or not outputs:
        raise ValueError(f'keep_outputs: {missing or list(outputs)} not among the graph '
                         f'outputs {names}')
    pruned = onnx.ModelProto()
    pruned.CopyFrom(model)
    kept_outputs = [o for o in graph.output if o.name in outputs]
    del pruned.graph.output[:]
    pruned.graph.output.extend(kept_outputs)
    has_subgraphs = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for node in graph.node for a in node.attribute)
    if has_subgraphs:
        return pruned
    needed = set(outputs)
    kept_nodes = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept_nodes.append(node)
            needed.update(name for name in node.input if name)
    del pruned.graph.node[:]
    pruned.graph.node.extend(reversed(kept_nodes))
    initializers = [t for t in graph.initializer if t.name in needed]
    del pruned.graph.initializer[:]
    pruned.graph.initializer.extend(initializers)
    value_info = [v for v in graph.value_info if v.name in needed]
    del pruned.graph.value_info[:]
    pruned.graph.value_info.extend(value_info)
    return pruned
