"""TensorRT backend: build (and cache) an engine from the ONNX export, run it with named tensors.

Supports TensorRT 8.6 through 10.x and 11.x (see :mod:`.tensorrt_plan` for the version-gated
build rules). Inference uses the named-tensor API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``) on a torch CUDA stream with torch-allocated device buffers; every buffer
handed to TensorRT is kept referenced by the backend until the next call overwrites it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..postprocess import label_dtype
from .base import (Backend, BackendUnavailableError, check_outputs, derive_outputs,
                   ENGINE_SUFFIXES, OUTPUTS, Size)
from .tensorrt_plan import (build_plan, BuildPlan, cache_paths, EngineKey, file_sha256,
                            read_sidecar, write_sidecar)

LOG = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / \
    'bisenet_ros' / 'tensorrt'


class TensorRTBackend(Backend):
    """Runs a TensorRT engine built from BiSeNet V2.

    Args:
        model: Engine file (``.engine``/``.plan``/``.trt``), ``.onnx`` file, ``BiSeNetV2``
            module or checkpoint path.
        device: ``'cuda'`` or ``'cuda:N'``.
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'`` (int8 needs ``calibration_images``).
        input_size: ``(H, W)`` to export at (module/checkpoint input; required there).
        max_batch: Largest batch of the engine (module/checkpoint input; default 1).
        dynamic_batch: Accept batches 1..max_batch (module/checkpoint input).
        cache_dir: Where engines are cached (default ``~/.cache/bisenet_ros/tensorrt``).
        calibration_images: Folder or list of BGR uint8 images for int8.
        workspace_gb: Builder workspace limit in GiB.
        label_set: Label set for a checkpoint path.
    """

    name = 'tensorrt'

    def __init__(self, model: Any, *, device: str = 'cuda', precision: str = 'fp32',
                 input_size: Optional[Size] = None, max_batch: int = 1,
                 dynamic_batch: bool = False, cache_dir: Any = None,
                 calibration_images: Any = None, workspace_gb: float = 2.0,
                 label_set: Any = None) -> None:
        import tensorrt as trt
        import torch
        self._trt, self._torch = trt, torch
        if not device.startswith('cuda') or not torch.cuda.is_available():
            raise BackendUnavailableError(f'tensorrt backend: needs a CUDA GPU visible to torch '
                                          f'(device {device!r}, cuda available: '
                                          f'{torch.cuda.is_available()})')
        self.device, self.precision = device, precision
        self._index = int(device.split(':')[1]) if ':' in device else 0
        self._plan: BuildPlan = build_plan(trt.__version__, precision)
        if precision == 'int8' and calibration_images is None and \
                not (isinstance(model, (str, os.PathLike)) and
                     Path(model).suffix.lower() in ENGINE_SUFFIXES):
            raise ValueError('tensorrt backend: int8 needs calibration_images (a folder or list '
                             'of (H, W, 3) uint8 BGR images like the ones you segment)')
        self._calibration = calibration_images
        self._workspace = int(workspace_gb * (1 << 30))
        self._cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._meta: Dict[str, Any] = {}
        self.label_set = None
        path = Path(model) if isinstance(model, (str, os.PathLike)) else None
        if path is not None and path.suffix.lower() in ENGINE_SUFFIXES:
            engine_path = self._check_engine_file(path)
        elif path is not None and path.suffix.lower() == '.onnx':
            engine_path = self._engine_for_onnx(path, None)
        else:
            engine_path = self._engine_for_module(model, label_set, input_size, max_batch,
                                                  dynamic_batch)
        self._load(engine_path)
        LOG.info('tensorrt backend ready: %s, engine %s (TensorRT %s)', self.describe(),
                 engine_path, trt.__version__)

    # -- engine files ----------------------------------------------------------------------
    def _current_key(self, onnx_path: Path, shape, dynamic: bool) -> EngineKey:
        major, minor = self._torch.cuda.get_device_capability(self._index)
        return EngineKey(trt_version=self._trt.__version__,
                         compute_capability=f'{major}.{minor}', precision=self.precision,
                         input_shape=tuple(int(v) for v in shape), dynamic_batch=dynamic,
                         onnx_sha256=file_sha256(onnx_path))

    def _check_engine_file(self, path: Path) -> Path:
        """A user-given engine: rebuild from its recorded ONNX when stale, else fail clearly."""
        if not path.is_file():
            raise FileNotFoundError(f'tensorrt backend: engine file {path}: no such file')
        side = read_sidecar(path)
        if side is None:
            return path  # foreign engine: deserialization itself reports a mismatch
        stored = EngineKey.from_dict(side['key'])
        onnx_path = Path(side.get('onnx', ''))
        major, minor = self._torch.cuda.get_device_capability(self._index)
        current = {'trt_version': self._trt.__version__,
                   'compute_capability': f'{major}.{minor}'}
        stale = {k: (getattr(stored, k), v) for k, v in current.items()
                 if getattr(stored, k) != v}
        self.precision = stored.precision
        self._plan = build_plan(self._trt.__version__, stored.precision)
        if not stale:
            return path
        if not onnx_path.is_file():
            raise RuntimeError(f'tensorrt backend: engine {path} was built for {stale} '
                               f'(stored, here) and its ONNX source {onnx_path} is gone; '
                               'rebuild it with `bisenet export --tensorrt`')
        LOG.warning('tensorrt backend: engine %s is stale (%s); rebuilding from %s', path,
                    stale, onnx_path)
        key = self._current_key(onnx_path, stored.input_shape, stored.dynamic_batch)
        self._build(onnx_path, key, path, side.get('label_set'))
        return path

    def _engine_for_onnx(self, onnx_path: Path, label_set: Any) -> Path:
        from ...export.onnx_export import onnx_io, read_metadata
        if not onnx_path.is_file():
            raise FileNotFoundError(f'tensorrt backend: ONNX file {onnx_path}: no such file')
        shape, _ = onnx_io(onnx_path)
        if len(shape) != 4 or not shape[2] or not shape[3]:
            raise ValueError(f'tensorrt backend: {onnx_path} has input shape {shape}; export '
                             'it at a fixed H, W (bisenet export --input-size HxW)')
        meta = read_metadata(onnx_path)
        dynamic = shape[0] is None
        full = (int(meta.get('batch', 1)) if dynamic else int(shape[0]), 3, shape[2],
                shape[3])
        key = self._current_key(onnx_path, full, dynamic)
        engine_path, _ = cache_paths(self._cache, onnx_path.stem, key)
        if engine_path.is_file() and (read_sidecar(engine_path) or {}).get('key') == \
                key.to_dict():
            LOG.info('tensorrt backend: cached engine %s matches', engine_path)
            return engine_path
        label = label_set.to_dict() if label_set is not None else meta.get('label_set')
        self._build(onnx_path, key, engine_path, label)
        return engine_path

    def _engine_for_module(self, model: Any, label_set: Any, input_size: Optional[Size],
                           max_batch: int, dynamic: bool) -> Path:
        from ...export.onnx_export import export_onnx
        from .torch_backend import TorchBackend
        if input_size is None:
            raise ValueError('tensorrt backend: input_size (H, W) is required to build an '
                             'engine from a PyTorch model')
        module = TorchBackend._load(model, label_set)
        ls = getattr(module, 'label_set', None)
        variant = self._plan.onnx_variant
        self._cache.mkdir(parents=True, exist_ok=True)
        onnx_path = self._cache / (f'bisenet_{input_size[0]}x{input_size[1]}_b{max_batch}'
                                   f"{'d' if dynamic else ''}_{variant}.onnx")
        export_onnx(module, onnx_path, input_size, batch=max_batch, dynamic_batch=dynamic,
                    outputs=('logits', 'labels', 'confidence'), labels_dtype='int32',
                    fp16=variant == 'fp16', label_set=ls)
        if variant == 'qdq':
            from .ort_quantize import quantize_int8
            qdq = onnx_path.with_name(onnx_path.stem + '_qdq.onnx')
            mean_std = (ls.mean, ls.std) if ls is not None else None
            onnx_path = quantize_int8(onnx_path, qdq, self._calibration, input_size, mean_std,
                                      for_tensorrt=True)
        return self._engine_for_onnx(onnx_path, ls)

    def _build(self, onnx_path: Path, key: EngineKey, engine_path: Path,
               label_set: Optional[Dict[str, Any]]) -> None:
        trt, plan = self._trt, self._plan
        LOG.info('tensorrt backend: building %s engine from %s (%s), this takes minutes',
                 key.precision, onnx_path, plan)
        builder = trt.Builder(self._logger)
        flags = 0
        creation = trt.NetworkDefinitionCreationFlag
        if plan.explicit_batch_flag:
            flags |= 1 << int(creation.EXPLICIT_BATCH)
        if plan.strongly_typed:
            flags |= 1 << int(creation.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f'tensorrt backend: cannot parse {onnx_path}: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self._workspace)
        for flag in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, flag))
        name = network.get_input(0).name
        n, c, h, w = key.input_shape
        profile = builder.create_optimization_profile()
        profile.set_shape(name, (1 if key.dynamic_batch else n, c, h, w), (n, c, h, w),
                          (n, c, h, w))
        config.add_optimization_profile(profile)
        calibrator = None
        if plan.calibrator:
            from .tensorrt_calibrator import make_calibrator
            calib_batch = 1 if key.dynamic_batch else n
            if key.dynamic_batch:
                calib_profile = builder.create_optimization_profile()
                calib_profile.set_shape(name, (1, c, h, w), (1, c, h, w), (1, c, h, w))
                config.set_calibration_profile(calib_profile)
            ls = self._label_set_from(label_set)
            calibrator = make_calibrator(trt, self._torch, self._calibration, (h, w),
                                         calib_batch, ls, engine_path.with_suffix('.calib'),
                                         self.device)
            config.int8_calibrator = calibrator
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f'tensorrt backend: building the engine from {onnx_path} '
                               'failed (see the TensorRT log above)')
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=engine_path.parent, suffix='.tmp')
        with os.fdopen(fd, 'wb') as handle:
            handle.write(bytes(serialized))
        os.replace(tmp, engine_path)
        write_sidecar(engine_path, key, {'onnx': str(onnx_path.resolve()),
                                         'label_set': label_set})
        LOG.info('tensorrt backend: wrote %s', engine_path)

    @staticmethod
    def _label_set_from(data: Optional[Dict[str, Any]]):
        from ...labels import LabelSet
        return LabelSet.from_dict(data, source='engine metadata') if data else None

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
        side = read_sidecar(engine_path) or {}
        self.label_set = self._label_set_from(side.get('label_set'))
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
            context.set_input_shape(self._input, tuple(x.shape))
            context.set_tensor_address(self._input, x.data_ptr())
            for name in self._outputs:
                shape = tuple(int(v) for v in context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self._buffers[name] = out
                context.set_tensor_address(name, out.data_ptr())
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError('tensorrt backend: execute_async_v3 failed')
            fetch = [n for n in wanted if n in self._outputs]
            if len(fetch) < len(wanted) and 'logits' not in fetch:
                if 'logits' not in self._outputs:
                    missing = [o for o in wanted if o not in fetch]
                    raise RuntimeError(f'tensorrt backend: the engine outputs only '
                                       f'{self._outputs}; {missing} needs a logits output')
                fetch.append('logits')
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


def _torch_dtype(trt: Any, torch: Any, dtype: Any):
    table = {'float32': torch.float32, 'float16': torch.float16, 'int32': torch.int32,
             'int8': torch.int8, 'uint8': torch.uint8, 'int64': torch.int64, 'bool': torch.bool,
             'bfloat16': torch.bfloat16}
    for trt_name, torch_dtype in table.items():
        member = getattr(trt, trt_name, None)
        if member is not None and dtype == member:
            return torch_dtype
    raise RuntimeError(f'tensorrt backend: unsupported tensor dtype {dtype}')


__all__: List[str] = ['TensorRTBackend', 'DEFAULT_CACHE']
