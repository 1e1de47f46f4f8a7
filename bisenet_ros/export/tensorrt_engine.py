"""Build TensorRT engines from the ONNX export, and cache them with the key they are valid for.

Version-gated build rules come from :mod:`.tensorrt_plan`; int8 engines come either from a Q/DQ
graph made by :mod:`.quantize` (strongly typed TensorRT) or from the entropy calibrator of
:mod:`.tensorrt_calibrator` (weakly typed TensorRT). Imports tensorrt and torch (CUDA) only
through the objects handed in.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import tempfile
from typing import Any, Dict, Optional, Tuple

from ..user_files import write_atomic
from .cache import (ArtifactCache, cache_key, cache_root, mark_used, model_digest,
                    progress)
from .tensorrt_plan import (build_plan, BuildPlan, cache_paths, EngineKey, file_sha256,
                            read_sidecar, write_sidecar)

LOG = logging.getLogger(__name__)


def default_cache() -> Path:
    """Where engines are cached: the ``tensorrt`` folder of the per-user artifact cache
    (:func:`.cache.cache_root`), read when an engine is built."""
    return cache_root() / 'tensorrt'


class EngineBuilder:
    """Makes (or finds in the cache) the engine file for one GPU, TensorRT and precision.

    Args:
        trt: The imported ``tensorrt`` module.
        torch: The imported ``torch`` module (device queries, calibration buffers).
        device: ``'cuda'`` or ``'cuda:N'``.
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'``; an engine file's own precision wins.
        cache_dir: Where engines are cached (default :func:`default_cache`).
        calibration_images: Folder or list of BGR uint8 images for int8.
        workspace_gb: Builder workspace limit in GiB.
    """

    def __init__(self, trt: Any, torch: Any, device: str, precision: str, *,
                 cache_dir: Any = None, calibration_images: Any = None,
                 workspace_gb: float = 2.0) -> None:
        self._trt, self._torch = trt, torch
        self.device, self.precision = device, precision
        self._index = int(device.split(':')[1]) if ':' in device else 0
        self.plan: BuildPlan = build_plan(trt.__version__, precision)
        self._calibration = calibration_images
        self._workspace = int(workspace_gb * (1 << 30))
        self._cache = Path(cache_dir) if cache_dir else default_cache()
        self._logger = trt.Logger(trt.Logger.WARNING)

    def current_key(self, onnx_path: Path, shape: Any, dynamic: bool) -> EngineKey:
        """What an engine built here now from ``onnx_path`` would be valid for."""
        major, minor = self._torch.cuda.get_device_capability(self._index)
        return EngineKey(trt_version=self._trt.__version__,
                         compute_capability=f'{major}.{minor}', precision=self.precision,
                         input_shape=tuple(int(v) for v in shape), dynamic_batch=dynamic,
                         onnx_sha256=file_sha256(onnx_path))

    def check_engine_file(self, path: Path) -> Path:
        """A user-given engine: rebuild from its recorded ONNX when stale, else fail clearly.

        Sets :attr:`precision` to the engine's own."""
        if not path.is_file():
            raise FileNotFoundError(f'tensorrt engine: engine file {path}: no such file')
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
        self.plan = build_plan(self._trt.__version__, stored.precision)
        if not stale:
            return path
        if not onnx_path.is_file():
            raise RuntimeError(f'tensorrt engine: engine {path} was built for {stale} '
                               f'(stored, here) and its ONNX source {onnx_path} is gone; '
                               'rebuild it with `bisenet export --tensorrt`')
        LOG.warning('tensorrt engine: engine %s is stale (%s); rebuilding from %s', path,
                    stale, onnx_path)
        key = self.current_key(onnx_path, stored.input_shape, stored.dynamic_batch)
        self._build(onnx_path, key, path, side.get('label_set'))
        return path

    def engine_for_onnx(self, onnx_path: Path, label_set: Any) -> Path:
        """The cached engine of ``onnx_path`` for this GPU, built when missing or stale."""
        from .onnx_export import onnx_io, read_metadata
        if not onnx_path.is_file():
            raise FileNotFoundError(f'tensorrt engine: ONNX file {onnx_path}: no such file')
        shape, _ = onnx_io(onnx_path)
        if len(shape) != 4 or not shape[2] or not shape[3]:
            raise ValueError(f'tensorrt engine: {onnx_path} has input shape {shape}; export '
                             'it at a fixed H, W (bisenet export --input-size HxW)')
        meta = read_metadata(onnx_path)
        dynamic = shape[0] is None
        full = (int(meta.get('batch', 1)) if dynamic else int(shape[0]), 3, shape[2],
                shape[3])
        key = self.current_key(onnx_path, full, dynamic)
        engine_path, _ = cache_paths(self._cache, onnx_path.stem, key)
        if engine_path.is_file() and (read_sidecar(engine_path) or {}).get('key') == \
                key.to_dict():
            LOG.info('tensorrt engine: cached engine %s matches', engine_path)
            mark_used(engine_path)
            return engine_path
        label = label_set.to_dict() if label_set is not None else meta.get('label_set')
        self._build(onnx_path, key, engine_path, label)
        return engine_path

    def engine_for_module(self, module: Any, input_size: Optional[Tuple[int, int]],
                          max_batch: int, dynamic: bool) -> Path:
        """Export ``module`` (a ``BiSeNetV2``) at ``input_size`` and build its engine."""
        from .onnx_export import export_onnx
        if input_size is None:
            raise ValueError('tensorrt engine: input_size (H, W) is required to build an '
                             'engine from a PyTorch model')
        ls = getattr(module, 'label_set', None)
        variant = self.plan.onnx_variant
        size = f'{input_size[0]}x{input_size[1]}'
        key = cache_key(model=model_digest(module), torch=self._torch.__version__,
                        trt=self._trt.__version__, size=size, batch=max_batch, dynamic=dynamic,
                        variant=variant)

        def build(target: Path) -> None:
            export_onnx(module, target, input_size, batch=max_batch, dynamic_batch=dynamic,
                        outputs=('logits', 'labels', 'confidence'), labels_dtype='int32',
                        fp16=variant == 'fp16', label_set=ls)
            if variant == 'qdq':
                from .artifacts import calibration_source
                from .quantize import quantize_int8
                mean_std = (ls.mean, ls.std) if ls is not None else None
                with tempfile.TemporaryDirectory(prefix='bisenet_qdq_') as tmp:
                    qdq = quantize_int8(target, Path(tmp) / 'qdq.onnx',
                                        calibration_source(self._calibration), input_size,
                                        mean_std, for_tensorrt=True)
                    os.replace(qdq, target)

        onnx_path = ArtifactCache('onnx', self._cache.parent).get_or_build(
            key, f'_{size}_b{max_batch}_{variant}.onnx', build,
            f'{variant} ONNX graph at {size} for TensorRT')
        return self.engine_for_onnx(onnx_path, ls)

    def _build(self, onnx_path: Path, key: EngineKey, engine_path: Path,
               label_set: Optional[Dict[str, Any]]) -> None:
        trt, plan = self._trt, self.plan
        LOG.info('tensorrt engine: building %s engine from %s (%s), this takes minutes',
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
            raise RuntimeError(f'tensorrt engine: cannot parse {onnx_path}: {errors}')
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
        with progress(f'tensorrt engine: building the {key.precision} engine of {onnx_path.name} '
                      f'for {key.input_shape} on compute capability {key.compute_capability} '
                      f'(TensorRT {key.trt_version})', LOG):
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f'tensorrt engine: building the engine from {onnx_path} '
                               'failed (see the TensorRT log above)')
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(engine_path, bytes(serialized))
        write_sidecar(engine_path, key, {'onnx': str(onnx_path.resolve()),
                                         'label_set': label_set})
        LOG.info('tensorrt engine: wrote %s', engine_path)

    @staticmethod
    def _label_set_from(data: Optional[Dict[str, Any]]):
        from ..labels import LabelSet
        return LabelSet.from_dict(data, source='engine metadata') if data else None
