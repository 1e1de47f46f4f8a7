"""OpenVINO backend: the ONNX export (fp32 or int8 Q/DQ) or an OpenVINO IR on the CPU or an
OpenVINO GPU (e.g. an Intel iGPU), with per-model thread and precision settings.

Precisions: ``fp32``; ``bf16`` (the CPU's inference-precision hint: bf16 kernels on CPUs with
AVX512-BF16/AMX); ``int8`` (a Q/DQ graph such as ``bisenet export --int8`` writes runs as int8
as it is; an fp32 graph or a PyTorch model is quantized first on ``calibration_images``);
``fp16`` on a GPU. The float layers of an int8 graph run in ``float_precision`` (``fp32`` by
default, ``bf16`` where the CPU has it natively and the loss of agreement is acceptable).

Each (batch, input size, fetched outputs) gets its own compiled model, reshaped to static
shapes (OpenVINO's CPU plugin is fastest on static shapes) and pruned to the fetched outputs
(labels only skips the softmax and the float logits copy). A PyTorch model is exported once with
dynamic H and W (inputs padded to multiples of 32, outputs cropped) into the per-user artifact
cache (:mod:`.onnx_files`, shared with the ONNX Runtime backend); at most
``2 * MAX_CACHED_SIZES`` compiled models and :data:`.base.MAX_CACHED_SIZES` files are kept open,
the least recently used dropped first. Compiled models are cached by OpenVINO itself
(``CACHE_DIR``, the ``openvino`` folder of the artifact cache), so a warm start skips compiling.

``streams`` > 1 compiles for throughput: that many streams, each with its share of the threads,
and :meth:`OpenVINOBackend.infer` may be called from that many threads at once (each call gets an
infer request of its own). A stream's threads never wait for one another across streams, so a
CPU that other processes also use loses less: on 2 cores beside a load of a quarter of one core,
two one-thread streams kept 84 % of their speed and one two-thread stream 75 % (docs/backends.md,
``benchmarks/bench_streams_contention.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ...cpu_features import physical_cores
from ..model_file import identify, ModelFile
from ..postprocess import label_dtype
from .base import (Backend, BackendUnavailableError, check_outputs, check_stream_count,
                   crop_outputs, derive_outputs, device_class, LruCache, MAX_CACHED_SIZES,
                   OUTPUTS, outputs_to_fetch, pad_to_stride, Size)
from .onnx_files import ModelFiles

LOG = logging.getLogger(__name__)

#: Backend precision -> OpenVINO ``INFERENCE_PRECISION_HINT`` for the float layers.
PRECISION_HINTS = {'fp32': 'f32', 'bf16': 'bf16', 'fp16': 'f16'}


#: OpenVINO's ``ENABLE_CPU_PINNING`` on the CPU (see :meth:`OpenVINOBackend._compile_config`).
CPU_PINNING = False


class OpenVINOBackend(Backend):
    """Runs BiSeNet V2 with ``openvino.Core.compile_model``.

    Args:
        model: ``.onnx`` file (fp32 or int8 Q/DQ), OpenVINO IR ``.xml``, ``BiSeNetV2`` module
            or checkpoint path (exported on demand, one file per input size).
        device: ``'cpu'``, or ``'gpu'`` / ``'gpu:N'`` when OpenVINO lists that GPU.
        precision: ``'fp32'``, ``'bf16'`` (CPU), ``'fp16'`` (GPU) or ``'int8'``.
        threads: ``INFERENCE_NUM_THREADS`` of each compiled model (``None``: OpenVINO's
            default); nothing process-wide is changed.
        input_size: ``(H, W)`` to export at (module input); ``None`` exports per size seen.
        label_set: Label set for a checkpoint path.
        calibration_images: int8 from an fp32 graph or a module: ``(H, W, 3)`` uint8 BGR
            images or a folder of images (``None``: the packaged demo frames).
        int8_layers: int8 quantized here: ``'compute'`` or ``'all'``
            (see :mod:`bisenet_ros.export.quantize`; default ``'compute'``).
        float_precision: int8 only: precision of the layers left in float, ``'fp32'`` or
            ``'bf16'``.
        profile: Collect OpenVINO's per-layer timings (``PERF_COUNT``), see :meth:`profile`.
        streams: Inference calls that run at once (see the module docstring), or ``'auto'``:
            2 on a CPU of two or more physical cores, else 1 (one call at a time, all threads
            on it: the lowest latency per call).
    """

    name = 'openvino'

    def __init__(self, model: Any, *, device: str = 'cpu', precision: str = 'fp32',
                 threads: Optional[int] = None, input_size: Optional[Size] = None,
                 label_set: Any = None, calibration_images: Any = None,
                 int8_layers: Optional[str] = None, float_precision: str = 'fp32',
                 profile: bool = False, streams: Union[int, str] = 1) -> None:
        import openvino as ov
        self._ov = ov
        self._core = ov.Core()
        self.device = device
        self._ov_device = self._pick_device(device)
        info = identify(model)
        if info.kind not in ('onnx', 'onnx-int8', 'openvino-ir', 'module', 'checkpoint'):
            raise ValueError(f'openvino backend: cannot run {info.describe()}; use the '
                             'tensorrt backend for engines')
        self.precision = 'int8' if info.kind == 'onnx-int8' else precision
        if info.kind == 'onnx-int8' and precision != 'int8':
            LOG.info('openvino backend: %s is quantized already; running it as int8 (not %s)',
                     info.path, precision)
        if float_precision not in ('fp32', 'bf16'):
            raise ValueError(f"openvino backend: float_precision must be 'fp32' or 'bf16', got "
                             f'{float_precision!r}')
        self._check_precision(float_precision)
        self.streams = self._pick_streams(streams)
        self._config = self._compile_config(threads, float_precision, profile)
        self._use_compile_cache()
        #: Model file per network input size (exports cached per user).
        self._files = ModelFiles(f'openvino {ov.__version__}', self.precision,
                                 calibration_images, int8_layers, self._drop_file)
        #: Compiled model and its idle infer requests per (batch, H, W, fetched outputs).
        self._compiled = LruCache(2 * MAX_CACHED_SIZES)
        self._lock = threading.Lock()  # _compiled and the request pools, across callers
        self._last_request: Any = None
        self.label_set = info.label_set
        if info.kind == 'module' or info.kind == 'checkpoint':
            self._init_from_module(info, label_set, input_size)
        else:
            self._init_from_file(info)
        LOG.info('openvino backend ready: %s, OpenVINO %s on %s, config %s', self.describe(),
                 ov.__version__, self._ov_device, self._config)

    # -- setup -----------------------------------------------------------------------------
    def _use_compile_cache(self) -> None:
        """Let OpenVINO keep compiled blobs in the artifact cache (it keys them by model,
        device, configuration and OpenVINO version itself)."""
        from ...export.cache import cache_root
        folder = cache_root() / 'openvino'
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._core.set_property({'CACHE_DIR': str(folder)})
        except (OSError, RuntimeError) as exc:
            LOG.warning('openvino backend: no compiled-model cache in %s (%s)', folder, exc)

    def _pick_device(self, device: str) -> str:
        available = list(self._core.available_devices)
        kind = device_class(device)
        if kind == 'cpu':
            return 'CPU'
        if kind != 'gpu':
            raise BackendUnavailableError(f'openvino backend: device {device!r} is a CUDA device; '
                                          "use 'cpu' or 'gpu[:N]' (OpenVINO devices "
                                          f'{available})')
        name = 'GPU' if device == 'gpu' else f'GPU.{device.split(":")[1]}'
        if name not in available and not (name == 'GPU' and 'GPU.0' in available):
            raise BackendUnavailableError(f'openvino backend: device {device!r} ({name}) is not '
                                          f'among the OpenVINO devices {available}')
        return name

    def _pick_streams(self, streams: Union[int, str]) -> int:
        if check_stream_count(streams) == 'auto':
            return 2 if self._ov_device == 'CPU' and physical_cores() >= 2 else 1
        return int(streams)

    def _check_precision(self, float_precision: str) -> None:
        on_cpu = self._ov_device == 'CPU'
        if self.precision == 'bf16' and not on_cpu:
            raise BackendUnavailableError('openvino backend: bf16 is a CPU precision; on a GPU '
                                          'use fp16')
        if self.precision == 'fp16' and on_cpu:
            raise BackendUnavailableError('openvino backend: fp16 runs on a GPU; on the CPU use '
                                          'fp32, bf16 or int8')
        if 'bf16' in (self.precision, float_precision) and on_cpu:
            caps = self._core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
            if 'BF16' not in caps:
                LOG.warning('openvino backend: this CPU has no native bf16 (capabilities %s); '
                            'OpenVINO runs fp32 instead', list(caps))

    def _compile_config(self, threads: Optional[int], float_precision: str,
                        profile: bool) -> Dict[str, Any]:
        float_part = float_precision if self.precision == 'int8' else self.precision
        config: Dict[str, Any] = {'PERFORMANCE_HINT': 'LATENCY',
                                  'INFERENCE_PRECISION_HINT': PRECISION_HINTS[float_part]}
        if self.streams > 1:
            config.update(PERFORMANCE_HINT='THROUGHPUT', NUM_STREAMS=self.streams)
        if threads and self._ov_device == 'CPU':
            config['INFERENCE_NUM_THREADS'] = int(threads)
        if self._ov_device == 'CPU':
            # Threads free to move: OpenVINO pins them to cores by default, and a pinned thread
            # waits whenever another process (the camera driver, DDS, other nodes) runs on its
            # core. Node on a 2-core AMD EPYC beside a 30 Hz VGA camera: 4.1-4.3 masks/s
            # unpinned, 2.5-2.7 pinned, alternated in one session (docs/backends.md).
            config['ENABLE_CPU_PINNING'] = CPU_PINNING
        if profile:
            config['PERF_COUNT'] = True
        return config

    def _init_from_file(self, info: ModelFile) -> None:
        path = info.path
        assert path is not None
        if info.kind == 'onnx' and self.precision == 'int8':
            path = self._files.quantized(path, info.input_size, info.label_set)
        model = self._read(path)
        shape = model.input(0).get_partial_shape()
        if shape.rank.get_length() != 4:
            raise ValueError(f'openvino backend: {path} takes input shape {shape}, expected '
                             '(N, 3, H, W)')
        dims = [d.get_length() if d.is_static else None for d in shape]
        self.fixed_size = (dims[2], dims[3]) if dims[2] and dims[3] else None
        self.max_batch = dims[0]
        self._files.use_file(path, self.fixed_size)
        self._output_names = [o.get_any_name() for o in model.outputs]
        if 'logits' not in self._output_names:
            self.available_outputs = tuple(n for n in self._output_names if n in OUTPUTS)
            if info.num_classes is None and self.label_set is None:
                raise ValueError(f'openvino backend: {path} has no logits output and no '
                                 'bisenet_ros metadata, so its class count is unknown')
            self.num_classes = info.num_classes or self.label_set.num_classes
        else:
            self.num_classes = int(model.output('logits').get_partial_shape()[1].get_length())

    def _init_from_module(self, info: ModelFile, label_set: Any,
                          input_size: Optional[Size]) -> None:
        self.num_classes, self.label_set, self.fixed_size = self._files.open_model(
            info, label_set, input_size, True, self.name)
        self._output_names = list(OUTPUTS)
        if self.fixed_size is not None:
            self._files.file_for(self.fixed_size)  # export (and quantize) now

    def _read(self, path: Path) -> Any:
        try:
            return self._core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises its own exception types
            raise RuntimeError(f'openvino backend: cannot read {path}: {exc}') from exc

    def _drop_file(self, size: Optional[Size]) -> None:
        """The file of ``size`` was dropped: so are its compiled models."""
        with self._lock:
            self._compiled.pop_where(lambda key: size is None or (key[1], key[2]) == size)

    def _request_for(self, batch: int, size: Size,
                     fetch: Tuple[str, ...]) -> Tuple[Any, List[Any]]:
        """An idle infer request computing only ``fetch`` for ``(batch, 3, H, W)`` inputs,
        and the pool to give it back to once its outputs are read."""
        key = (batch, size[0], size[1], tuple(sorted(fetch)))
        with self._lock:  # one caller compiles a new shape; the others wait for it
            entry = self._compiled.get(key)
            if entry is None:
                entry = (self._compile(batch, size, fetch), [])
                self._compiled.put(key, entry)
            compiled, pool = entry
            request = pool.pop() if pool else compiled.create_infer_request()
        return request, pool

    def _compile(self, batch: int, size: Size, fetch: Tuple[str, ...]) -> Any:
        """The model pruned to ``fetch``, compiled for ``(batch, 3, H, W)`` inputs."""
        ov = self._ov
        model = self._read(self._files.file_for(size))
        if set(fetch) != set(self._output_names):
            results = [r for r in model.get_results()
                       if r.output(0).get_any_name() in fetch or
                       r.input_value(0).get_any_name() in fetch]
            model = ov.Model(results, model.get_parameters(), 'bisenet_pruned')
        model.reshape({model.input(0).get_any_name(): [batch, 3, size[0], size[1]]})
        try:
            compiled = self._core.compile_model(model, self._ov_device, self._config)
        except Exception as exc:  # OpenVINO raises its own exception types
            raise RuntimeError(f'openvino backend: cannot compile the model for '
                               f'{self._ov_device}: {exc}') from exc
        LOG.info('openvino backend: compiled for batch %d at %dx%d, outputs %s', batch,
                 size[0], size[1], list(fetch))
        return compiled

    # -- inference -------------------------------------------------------------------------
    def infer(self, batch: np.ndarray,
              outputs: Sequence[str] = ('logits',)) -> Dict[str, np.ndarray]:
        """See :meth:`Backend.infer`; uses the graph's own labels/confidence outputs. Up to
        :attr:`streams` calls may run at once from as many threads."""
        wanted = check_outputs(outputs)
        self.check_batch(batch)
        fetch = outputs_to_fetch(self.name, wanted, self._output_names)
        size = (int(batch.shape[2]), int(batch.shape[3]))
        if self._files.pad:
            batch, size = pad_to_stride(batch)
        request, pool = self._request_for(int(batch.shape[0]),
                                          (int(batch.shape[2]), int(batch.shape[3])),
                                          tuple(fetch))
        try:
            request.infer({0: np.ascontiguousarray(batch)})
            self._last_request = request
            have = {}
            for name in fetch:
                value = request.get_tensor(name).data
                have[name] = value.astype(np.float32) if value.dtype != np.float32 and \
                    np.issubdtype(value.dtype, np.floating) else value.copy()
        finally:
            with self._lock:
                pool.append(request)
        if self._files.pad:
            have = crop_outputs(have, size)
        return derive_outputs(wanted, have, label_dtype(self.num_classes))

    def profile(self, top: int = 10) -> Dict[str, float]:
        """Milliseconds per layer type of the last :meth:`infer` call, largest first (needs
        ``profile=True``); keys are ``'<type> (<kernel>)'``."""
        if self._last_request is None or 'PERF_COUNT' not in self._config:
            raise RuntimeError('openvino backend: profile() needs profile=True and one infer()')
        totals: Dict[str, float] = {}
        for item in self._last_request.profiling_info:
            key = f'{item.node_type} ({item.exec_type})'
            totals[key] = totals.get(key, 0.0) + item.real_time.total_seconds() * 1e3
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])
        return dict(ranked[:top])

    def close(self) -> None:
        with self._lock:
            self._compiled.clear()
        self._last_request = None
        self._files.clear()
