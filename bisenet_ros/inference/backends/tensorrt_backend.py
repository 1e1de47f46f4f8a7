"""TensorRT backend: build (and cache) an engine from the ONNX export, run it with named tensors.

Supports TensorRT 8.6 through 10.x and 11.x; engines are built and cached by
:mod:`bisenet_ros.export.tensorrt_engine` (see :mod:`bisenet_ros.export.tensorrt_plan` for the
version-gated build rules). Inference uses the named-tensor API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) on a torch CUDA stream with torch-allocated device
buffers; every buffer handed to TensorRT is kept referenced by the backend until the next call
overwrites it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..model_file import identify, load_module
from ..postprocess import label_dtype
from .base import (Backend, BackendUnavailableError, check_outputs, derive_outputs, OUTPUTS,
                   outputs_to_fetch, Size)

LOG = logging.getLogger(__name__)


class TensorRTBackend(Backend):
    """Runs a TensorRT engine built from BiSeNet V2.

    Args:
        model: Engine file (``.engine``/``.plan``/``.trt``), ``.onnx`` file, ``BiSeNetV2``
            module or checkpoint path.
        device: ``'cuda'`` or ``'cuda:N'``.
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'`` (int8 needs ``calibration_images``).
        threads: Ignored (the work runs on the GPU).
        input_size: ``(H, W)`` to export at (module/checkpoint input; required there).
        max_batch: Largest batch of the engine (module/checkpoint input; default 1).
        dynamic_batch: Accept batches 1..max_batch (module/checkpoint input).
        cache_dir: Where engines are cached (default: the ``tensorrt`` folder of the artifact
            cache, see :mod:`bisenet_ros.export.cache`).
        calibration_images: Folder or list of BGR uint8 images for int8.
        workspace_gb: Builder workspace limit in GiB.
        label_set: Label set for a checkpoint path.
    """

    name = 'tensorrt'

    def __init__(self, model: Any, *, device: str = 'cuda', precision: str = 'fp32',
                 threads: Optional[int] = None, input_size: Optional[Size] = None,
                 max_batch: int = 1,
                 dynamic_batch: bool = False, cache_dir: Any = None,
                 calibration_images: Any = None, workspace_gb: float = 2.0,
                 label_set: Any = None) -> None:
        import tensorrt as trt
        import torch

        from ...export.tensorrt_engine import EngineBuilder
        self._trt, self._torch = trt, torch
        if not device.startswith('cuda') or not torch.cuda.is_available():
            raise BackendUnavailableError(f'tensorrt backend: needs a CUDA GPU visible to torch '
                                          f'(device {device!r}, cuda available: '
                                          f'{torch.cuda.is_available()})')
        info = identify(model)
        if precision == 'int8' and calibration_images is None and info.kind != 'engine':
            raise ValueError('tensorrt backend: int8 needs calibration_images (a folder or list '
                             'of (H, W, 3) uint8 BGR images like the ones you segment)')
        self.device = device
        self._index = int(device.split(':')[1]) if ':' in device else 0
        self._logger = trt.Logger(trt.Logger.WARNING)
        builder = EngineBuilder(trt, torch, device, precision, cache_dir=cache_dir,
                                calibration_images=calibration_images,
                                workspace_gb=workspace_gb)
        if info.kind == 'engine':
            engine_path = builder.check_engine_file(info.path)
        elif info.kind in ('onnx', 'onnx-int8'):
            engine_path = builder.engine_for_onnx(info.path, None)
        elif info.kind in ('module', 'checkpoint'):
            engine_path = builder.engine_for_module(load_module(info, label_set), input_size,
                                                    max_batch, dynamic_batch)
        else:
            raise ValueError(f'tensorrt backend: cannot run {info.describe()}')
        self.precision = builder.precision
        self.label_set = None
        self._load(engine_path)
        LOG.info('tensorrt backend ready: %s, engine %s (TensorRT %s)', self.describe(),
                 engine_path, trt.__version__)

    # -- runtime ---------------------------------------------------------------------------
    def _load(self, engine_path: Path) -> None:
        trt, torch = self._trt, self._torch
        torch.cuda.set_device(self._index)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise RuntimeError(f'tensorrt backend: cannot load engine {engine_path}: it was '
                               f'probably built with another TensorRT (here {trt.__version__}) '
                               'or for another GPU; rebuild it with `bisenet export --tensorrt`')
        self._runtime, self._engine = runtime, engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise RuntimeError(f'tensorrt backend: {engine_path} has inputs {inputs}, '
                               'expected exactly one image input')
        self._input = inputs[0]
        self._outputs = [n for n in names if n not in inputs]
        if 'logits' not in self._outputs:
            self.available_outputs = tuple(n for n in self._outputs if n in OUTPUTS)
        shape = tuple(engine.get_tensor_shape(self._input))
        self.fixed_size = (int(shape[2]), int(shape[3]))
        profile_max = engine.get_tensor_profile_shape(self._input, 0)[2]
        self.max_batch = int(profile_max[0]) if shape[0] == -1 else int(shape[0])
        self.label_set = identify(engine_path).label_set
        if 'logits' in self._outputs:
            self.num_classes = int(engine.get_tensor_shape('logits')[1])
        elif self.label_set is not None:
            self.num_classes = self.label_set.num_classes
        else:
            raise RuntimeError(f'tensorrt backend: {engine_path} has no logits output and no '
                               'sidecar JSON, so its class count is unknown')
        self._dtypes = {n: _torch_dtype(trt, torch, engine.get_tensor_dtype(n)) for n in names}
        self._stream = torch.cuda.Stream(device=self._index)
        self._buffers: Dict[str, Any] = {}  # every tensor whose address TensorRT holds

    def infer(self, batch: np.ndarray,
              outputs: Sequence[str] = ('logits',)) -> Dict[str, np.ndarray]:
        """See :meth:`Backend.infer`; all engine outputs are bound, the requested ones copied."""
        wanted = check_outputs(outputs)
        self.check_batch(batch)
        torch, context = self._torch, self._context
        with torch.cuda.device(self._index), torch.cuda.stream(self._stream):
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            x = x.to(self._dtypes[self._input]).contiguous()
            self._buffers = {self._input: x}
            _checked(context.set_input_shape(self._input, tuple(x.shape)),
                     f'set_input_shape({self._input!r}, {tuple(x.shape)}) was refused: the '
                     f'engine takes batches of 1..{self.max_batch} at {self.fixed_size}')
            _checked(context.set_tensor_address(self._input, x.data_ptr()),
                     f'set_tensor_address({self._input!r}) was refused')
            for name in self._outputs:
                shape = tuple(int(v) for v in context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self._buffers[name] = out
                _checked(context.set_tensor_address(name, out.data_ptr()),
                         f'set_tensor_address({name!r}) was refused')
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError('tensorrt backend: execute_async_v3 failed')
            fetch = outputs_to_fetch(self.name, wanted, self._outputs)
            host = {n: self._buffers[n].float().cpu() if self._buffers[n].is_floating_point()
                    else self._buffers[n].cpu() for n in fetch}
        self._stream.synchronize()
        have = {n: t.numpy() for n, t in host.items()}
        return derive_outputs(wanted, have, label_dtype(self.num_classes))

    def close(self) -> None:
        self._buffers = {}
        self._context = None
        self._engine = None
        self._runtime = None


def _checked(result: Any, what: str) -> None:
    """Raise ``RuntimeError`` naming ``what`` when a TensorRT call returned ``False``."""
    if result is False:
        raise RuntimeError(f'tensorrt backend: {what} (see the TensorRT log above)')


def _torch_dtype(trt: Any, torch: Any, dtype: Any):
    table = {'float32': torch.float32, 'float16': torch.float16, 'int32': torch.int32,
             'int8': torch.int8, 'uint8': torch.uint8, 'int64': torch.int64, 'bool': torch.bool,
             'bfloat16': torch.bfloat16}
    for trt_name, torch_dtype in table.items():
        member = getattr(trt, trt_name, None)
        if member is not None and dtype == member:
            return torch_dtype
    raise RuntimeError(f'tensorrt backend: unsupported tensor dtype {dtype}')


__all__: List[str] = ['TensorRTBackend']
