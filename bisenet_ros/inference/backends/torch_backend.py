"""PyTorch eager backend: CPU or CUDA; fp32, fp16 (CUDA), bf16 (autocast; CPU or CUDA)."""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..model_file import load_module
from ..postprocess import label_dtype
from .base import Backend, BackendUnavailableError, check_outputs

LOG = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN reports native bf16 kernels (AVX512-BF16 or AMX) on this CPU."""
    import torch
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchBackend(Backend):
    """Runs a ``BiSeNetV2`` module eagerly under ``torch.inference_mode``.

    Args:
        model: A ``BiSeNetV2`` module or a checkpoint path (``.pt``/``.pth``).
        device: ``'cpu'`` or ``'cuda[:i]'``.
        precision: ``'fp32'``; ``'fp16'`` (CUDA only, half weights); ``'bf16'`` (autocast; on a
            CPU without AVX512-BF16/AMX it runs emulated and slowly, with a warning).
        threads: Accepted for a uniform interface but not applied: torch has one intra-op
            thread pool per process, set once at the process entry point
            (:func:`bisenet_ros.inference.threads.set_process_threads`); a differing value is
            logged.
        input_size: Ignored: eager torch runs any input size.
        label_set: Label set for a checkpoint path (see ``load_model``).
        channels_last: Use the NHWC memory format (often faster with oneDNN on CPU).
    """

    name = 'torch'

    def __init__(self, model: Any, *, device: str = 'cpu', precision: str = 'fp32',
                 threads: Optional[int] = None, input_size: Any = None, label_set: Any = None,
                 channels_last: bool = False) -> None:
        import torch
        self._torch = torch
        module = load_module(model, label_set)
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise BackendUnavailableError(f'torch backend: device {device!r} requested but no '
                                          'CUDA GPU is available to this torch build '
                                          f'({torch.__version__})')
        if precision == 'fp16' and not device.startswith('cuda'):
            raise BackendUnavailableError('torch backend: fp16 needs a CUDA device; on the CPU '
                                          'use fp32 or bf16')
        if precision == 'int8':
            raise BackendUnavailableError('torch backend: int8 is not supported; use the '
                                          'onnxruntime (CPU) or tensorrt backend')
        if precision == 'bf16' and device == 'cpu' and not cpu_has_native_bf16():
            LOG.warning('torch backend: this CPU has no native bf16 (AVX512-BF16/AMX); bf16 runs '
                        'emulated and is usually slower than fp32')
        if threads and int(threads) != torch.get_num_threads():
            LOG.info('torch backend: threads=%d not applied; torch uses %d threads for the whole '
                     'process (set at the entry point)', int(threads), torch.get_num_threads())
        if precision == 'fp16':
            module = copy.deepcopy(module).half()
        self.device = device
        self.precision = precision
        self.num_classes = int(module.num_classes)
        self.label_set = getattr(module, 'label_set', None)
        self._channels_last = channels_last
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self._module = module.to(device=device, memory_format=memory_format).eval()
        self._labels_dtype = torch.uint8 if label_dtype(self.num_classes) == np.uint8 \
            else torch.int32
        LOG.info('torch backend ready: %s', self.describe())

    def _autocast(self):
        if self.precision != 'bf16':
            return contextlib.nullcontext()
        device_type = 'cuda' if self.device.startswith('cuda') else 'cpu'
        return self._torch.autocast(device_type=device_type, dtype=self._torch.bfloat16)

    def infer(self, batch: np.ndarray,
              outputs: Sequence[str] = ('logits',)) -> Dict[str, np.ndarray]:
        """See :meth:`Backend.infer`; labels and confidence are computed on the device."""
        wanted = check_outputs(outputs)
        self.check_batch(batch)
        torch = self._torch
        x = torch.from_numpy(batch)
        if self.device != 'cpu':
            x = x.to(self.device, non_blocking=True)
        if self.precision == 'fp16':
            x = x.half()
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            logits = self._module(x)
            result = {}
            if 'labels' in wanted:
                # max(dim).indices == argmax (first maximum on ties); on CPU tensors argmax
                # over the strided class axis is ~8x slower (98 vs 12 ms at 11x512x1024).
                result['labels'] = logits.max(dim=1).indices.to(self._labels_dtype)
            if 'confidence' in wanted:
                result['confidence'] = torch.softmax(logits.float(), dim=1).amax(dim=1)
            if 'logits' in wanted:
                result['logits'] = logits.float().contiguous()
        return {k: v.cpu().numpy() for k, v in result.items()}

    def close(self) -> None:
        self._module = None
        if self.device.startswith('cuda'):
            self._torch.cuda.empty_cache()
