"""ONNX Runtime backend: CPU by default, CUDA / TensorRT execution providers when installed.

Accepts an ``.onnx`` file (fixed or dynamic batch, as exported) or a ``BiSeNetV2`` module /
checkpoint, which is exported on demand (dynamic batch, outputs logits + labels + confidence)
into the per-user artifact cache (:mod:`.onnx_files`, shared with the OpenVINO backend): once,
with dynamic H and W, for every input size (inputs padded to multiples of 32, outputs cropped),
or at the one ``input_size`` asked for. Per-size state is bounded: at most
:data:`.base.MAX_CACHED_SIZES` sizes keep sessions, the least recently used is dropped.
``int8`` quantizes the export statically (QDQ, per-channel weights) on calibration images (the
packaged demo frames unless given), see :mod:`bisenet_ros.export.quantize`; the result is cached.

ONNX Runtime computes every node of a graph whatever outputs are fetched, so each set of
requested outputs gets its own session on a copy of the graph pruned to those outputs
(labels only, the common case, skips the softmax and the float logits copy).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ...cpu_features import physical_cores
from ..model_file import identify, ModelFile
from ..postprocess import label_dtype
from .base import (Backend, BackendUnavailableError, check_outputs, crop_outputs,
                   derive_outputs, OUTPUTS, outputs_to_fetch, pad_to_stride, Size)
from .onnx_files import ModelFiles

LOG = logging.getLogger(__name__)

#: ``graph_optimization`` option -> ``onnxruntime.GraphOptimizationLevel`` member.
OPT_LEVELS = {'disable': 'ORT_DISABLE_ALL', 'basic': 'ORT_ENABLE_BASIC',
              'extended': 'ORT_ENABLE_EXTENDED', 'all': 'ORT_ENABLE_ALL'}


class OnnxRuntimeBackend(Backend):
    """Runs BiSeNet V2 with ``onnxruntime.InferenceSession``.

    Args:
        model: ``.onnx`` path, ``BiSeNetV2`` module or checkpoint path.
        device: ``'cpu'`` or ``'cuda[:i]'`` (needs ``onnxruntime-gpu``).
        precision: ``'fp32'``; ``'int8'`` (CPU; an ``.onnx`` file quantized already, e.g. by
            ``bisenet export --int8``, runs as int8 whatever is asked); ``'fp16'`` (CUDA, from
            a module: half weights).
        threads: ``intra_op_num_threads`` (``None``: one per physical core this process may
            use, as ORT's default, but set explicitly: ORT pins the threads of its default
            pool to cores, where a camera driver or DDS would stall them).
        input_size: ``(H, W)`` to export at (module input); ``None``: one dynamic-H/W export
            (per size seen, at most :data:`.base.MAX_CACHED_SIZES` kept, for a module whose
            size policy is not ``pad``).
        label_set: Label set for a checkpoint path.
        graph_optimization: ``'disable'``, ``'basic'``, ``'extended'`` or ``'all'``.
        tensorrt_ep: On CUDA, put ORT's TensorRT execution provider first.
        calibration_images: int8 only: ``(H, W, 3)`` uint8 BGR images or a folder of images
            (``None``: the packaged demo frames).
        int8_layers: int8 only: ``'compute'`` (default) or ``'all'``, see
            :mod:`bisenet_ros.export.quantize`.
        dynamic_size: A module without ``input_size`` is exported once with dynamic H, W
            (default), or per input size seen (``False``; the LRU bounds them); measured side
            by side in ``benchmarks/bench_sizes.py``.
    """

    name = 'onnxruntime'

    def __init__(self, model: Any, *, device: str = 'cpu', precision: str = 'fp32',
                 threads: Optional[int] = None, input_size: Optional[Size] = None,
                 label_set: Any = None, graph_optimization: str = 'all',
                 tensorrt_ep: bool = False, calibration_images: Any = None,
                 int8_layers: str = 'compute', dynamic_size: bool = True) -> None:
        import onnxruntime as ort
        self._ort = ort
        self.device = device
        self.precision = precision
        self._threads = threads
        self._dynamic_size = dynamic_size
        if graph_optimization not in OPT_LEVELS:
            raise ValueError(f'graph_optimization must be one of {sorted(OPT_LEVELS)}, got '
                             f'{graph_optimization!r}')
        self._opt_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[graph_optimization])
        self._providers = self._pick_providers(device, tensorrt_ep)
        info = identify(model)
        #: ``model`` is an .onnx file quantized already (run as int8 as it is).
        self._prequantized = info.kind == 'onnx-int8'
        self._check_precision(info)
        #: Model file per network input size (exports cached per user).
        self._files = ModelFiles(f'onnxruntime {ort.__version__}', precision, calibration_images,
                                 int8_layers, self._drop_size)
        #: One session per (input size key, fetched outputs).
        self._sessions: Dict[Tuple[Optional[Size], Tuple[str, ...]], Any] = {}
        self.label_set = None
        if info.kind in ('onnx', 'onnx-int8'):
            self._init_from_file(info)
        else:
            self._init_from_module(info, label_set, input_size)
        LOG.info('onnxruntime backend ready: %s, providers %s', self.describe(),
                 self._providers)

    # -- setup -----------------------------------------------------------------------------
    def _pick_providers(self, device: str, tensorrt_ep: bool):
        available = self._ort.get_available_providers()
        if device == 'cpu':
            return ['CPUExecutionProvider']
        if 'CUDAExecutionProvider' not in available:
            raise BackendUnavailableError(f'onnxruntime backend: device {device!r} needs the '
                                          'CUDAExecutionProvider (onnxruntime-gpu and a GPU); '
                                          f'available: {available}')
        index = int(device.split(':')[1]) if ':' in device else 0
        providers: list = [('CUDAExecutionProvider', {'device_id': index}),
                           'CPUExecutionProvider']
        if tensorrt_ep:
            if 'TensorrtExecutionProvider' not in available:
                raise BackendUnavailableError('onnxruntime backend: tensorrt_ep=True but the '
                                              'TensorrtExecutionProvider is not available')
            providers.insert(0, ('TensorrtExecutionProvider', {'device_id': index}))
        return providers

    def _check_precision(self, info: ModelFile) -> None:
        on_gpu = self.device != 'cpu'
        if self.precision == 'bf16':
            raise BackendUnavailableError('onnxruntime backend: bf16 is not supported; use the '
                                          'torch backend for bf16')
        if self.precision == 'fp16' and not on_gpu:
            raise BackendUnavailableError('onnxruntime backend: fp16 runs on CUDA only; on the '
                                          'CPU use fp32 or int8')
        if self.precision == 'int8' and on_gpu:
            raise BackendUnavailableError('onnxruntime backend: int8 is the CPU path; on a GPU '
                                          'use the tensorrt backend for int8')
        if info.kind not in ('onnx', 'onnx-int8', 'module', 'checkpoint'):
            raise ValueError(f'onnxruntime backend: cannot run {info.describe()}; use the '
                             f"{'tensorrt' if info.kind == 'engine' else 'openvino'} backend")

    def _init_from_file(self, info: ModelFile) -> None:
        path = info.path
        assert path is not None
        self.fixed_size = info.input_size
        self.max_batch = info.batch
        self.label_set = info.label_set
        if self._prequantized:
            if self.precision != 'int8':
                LOG.info('onnxruntime backend: %s is quantized already; running it as int8 '
                         '(not %s)', path, self.precision)
            self.precision = 'int8'  # the file's own precision, used as is
        elif self.precision == 'int8':
            path = self._files.quantized(path, self.fixed_size, self.label_set)
        self._files.use_file(path, self.fixed_size)
        session = self._session_for(self.fixed_size, None)  # loads (and checks) the file
        out = session.get_outputs()
        self._output_names = [o.name for o in out]
        if 'logits' not in self._output_names:
            self.available_outputs = tuple(n for n in self._output_names if n in OUTPUTS)
        if 'logits' in self._output_names:
            self.num_classes = int(out[self._output_names.index('logits')].shape[1])
        elif info.num_classes:
            self.num_classes = info.num_classes
        elif self.label_set is not None:
            self.num_classes = self.label_set.num_classes
        else:
            raise ValueError(f'onnxruntime backend: {path} has no logits output and no '
                             'bisenet_ros metadata, so its class count is unknown')

    def _init_from_module(self, info: ModelFile, label_set: Any,
                          input_size: Optional[Size]) -> None:
        self.num_classes, self.label_set, self.fixed_size = self._files.open_model(
            info, label_set, input_size, self._dynamic_size, self.name)
        self._output_names = ['logits', 'labels', 'confidence']
        if self.fixed_size is not None:
            self._session_for(self.fixed_size, ('labels',))  # export (and quantize) now

    def _session(self, model: Union[Path, bytes], name: Path):
        """An ``InferenceSession`` on a file or serialized model (``name`` for errors)."""
        options = self._ort.SessionOptions()
        options.graph_optimization_level = self._opt_level
        options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = int(self._threads or physical_cores())
        options.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else str(model)
        try:
            return self._ort.InferenceSession(source, options, providers=self._providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeError(f'onnxruntime backend: cannot load {name}: {exc}') from exc

    def _session_for(self, size: Optional[Size], fetch: Optional[Tuple[str, ...]]):
        """The session for ``size`` computing only ``fetch`` (``None``: every output)."""
        key_size = self._files.key(size)
        if fetch is not None and set(fetch) == set(self._output_names):
            fetch = None
        key = (key_size, None if fetch is None else tuple(sorted(fetch)))
        session = self._sessions.get(key)
        if session is not None:
            return session
        path = self._files.file_for(key_size)
        if fetch is None:
            session = self._session(path, path)
        else:
            import onnx

            from ...export.onnx_export import keep_outputs
            pruned = keep_outputs(onnx.load(str(path)), fetch)
            session = self._session(pruned.SerializeToString(), path)
            LOG.info('onnxruntime backend: session for outputs %s at %s', list(fetch),
                     'any size' if key_size is None else f'{key_size[0]}x{key_size[1]}')
        self._sessions[key] = session
        return session

    def _drop_size(self, size: Optional[Size]) -> None:
        """The file of ``size`` was dropped: so are its sessions."""
        for key in [k for k in self._sessions if k[0] == size]:
            del self._sessions[key]

    # -- inference -------------------------------------------------------------------------
    def infer(self, batch: np.ndarray,
              outputs: Sequence[str] = ('logits',)) -> Dict[str, np.ndarray]:
        """See :meth:`Backend.infer`; uses the graph's own labels/confidence outputs."""
        wanted = check_outputs(outputs)
        self.check_batch(batch)
        fetch = outputs_to_fetch(self.name, wanted, self._output_names)
        size = (int(batch.shape[2]), int(batch.shape[3]))
        if self._files.pad:
            batch, size = pad_to_stride(batch)
        session = self._session_for(size, tuple(fetch))
        feed = batch.astype(np.float16) if self.precision == 'fp16' else batch
        values = session.run(fetch, {session.get_inputs()[0].name: feed})
        have = {name: (v.astype(np.float32) if v.dtype == np.float16 else v)
                for name, v in zip(fetch, values)}
        if self._files.pad:
            have = crop_outputs(have, size)
        return derive_outputs(wanted, have, label_dtype(self.num_classes))

    def close(self) -> None:
        self._sessions.clear()
        self._files.clear()
