"""The public inference facade: images in, label maps (and optional extras) out, any backend."""

from __future__ import annotations

from dataclasses import dataclass, field
import logging
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..images import as_color_image, ColorImage
from ..labels import LabelSet, load_label_set
from ..limits import LimitError, threads_problem, work_problem
from .backends import Backend, create_backend, DEFAULT_BOUND, PrecisionChoice
from .model_file import identify
from .postprocess import (apply_threshold, argmax_labels, blend_overlay, colorize_labels,
                          label_dtype, resize_confidence, resize_labels)
from ..preprocess import check_size, preprocess

LOG = logging.getLogger(__name__)


#: A per-image hook of :meth:`Segmenter.segment_batch`: ``(C, h, w)`` logits -> probabilities.
Smoother = Callable[[np.ndarray], np.ndarray]


@dataclass
class SegmentationResult:
    """Outputs for one image, all at the image's resolution ``(H, W)``.

    Attributes:
        labels: ``(H, W)`` class ids, uint8 (uint16 when ids exceed 255).
        color: ``(H, W, 3)`` uint8 RGB colour mask (label-set palette), if requested.
        overlay: ``(H, W, 3)`` uint8 alpha blend, same channel order as the input, if requested.
        confidence: ``(H, W)`` float32 max softmax probability in [0, 1], if requested.
        timings: Seconds for ``'preprocess'``, ``'inference'``, ``'postprocess'`` of the call
            that produced this result (shared by every image of one batch call).
    """

    labels: np.ndarray
    color: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class GroupResult:
    """One inference call of :meth:`Segmenter.segment_groups`.

    Attributes:
        indices: Positions in the input of the call's images, ascending.
        results: One result per index, in the same order; empty when the call failed.
        error: Why the call failed (its images have no results), else None.
    """

    indices: List[int]
    results: List[SegmentationResult]
    error: Optional[Exception] = None

    def pairs(self) -> List[Tuple[int, SegmentationResult]]:
        """``(input position, result)`` of each image of the call (none when it failed)."""
        return list(zip(self.indices, self.results))


@dataclass(frozen=True)
class _Options:
    """What every call of one :meth:`Segmenter.segment_groups` renders, and its threshold."""

    color: bool
    overlay: bool
    overlay_alpha: float
    confidence_threshold: float


def _per_image(value: Any, count: int, what: str) -> List[Any]:
    """``value`` as one entry per image: a sequence of ``count`` entries kept (else
    ``ValueError``), ``None`` or a bool repeated."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return [value] * count
    entries = list(value)
    if len(entries) != count:
        raise ValueError(f'segment_batch: {len(entries)} {what} for {count} images')
    return entries


class Segmenter:
    """Semantic segmentation of colour images with BiSeNet V2: ``(H, W, 3)`` uint8 arrays or
    :class:`~bisenet_ros.images.ColorImage` values (which carry their channel order).

    Args:
        model_or_path: A ``BiSeNetV2`` module, or a checkpoint (``.pt``/``.pth``), ``.onnx``,
            OpenVINO IR (``.xml``) or TensorRT engine path.
        backend: A name of :data:`bisenet_ros.inference.backends.BACKENDS` (``'auto'``,
            ``'torch'``, ``'onnxruntime'``, ``'openvino'``, ``'tensorrt'``); ``auto`` logs what
            it picked and why.
        input_size: ``None`` runs each image at its own size; ``(H, W)`` resizes every image to
            it for inference (outputs are mapped back). Fixed-shape models (ONNX/engines
            exported at one size) set it themselves.
        device: ``'cpu'``, ``'cuda[:i]'``, ``'gpu[:i]'`` (OpenVINO) or ``'auto'``.
        precision: ``'auto'`` (default: the fastest configuration this hardware runs natively
            whose labels agree with fp32 on the packaged frames at least ``agreement_bound``;
            see :mod:`bisenet_ros.inference.backends.auto_precision`), or ``'fp32'``,
            ``'fp16'``, ``'bf16'`` or ``'int8'`` (backend permitting, used as given).
        label_set: Label set name, YAML path or object; defaults to the model's own.
        threads: CPU threads of the runtime's session (ONNX Runtime, OpenVINO), at most the
            CPUs this process may use; torch's pool is per process and is set by the entry
            point, not here.
        agreement_bound: ``precision='auto'``: least fraction of labels equal to fp32's
            (default :data:`~bisenet_ros.inference.backends.DEFAULT_BOUND`).
        streams: Calls that may run at once from as many threads (:attr:`streams`): ``None``
            (one at a time, the lowest latency per call), ``'auto'`` (what pays off for
            callers that run side by side, e.g. two on a CPU with OpenVINO) or an integer
            (openvino).
        backend_options: Extra keyword options for the backend (``calibration_images`` for
            int8, ``guard_frames`` for ``auto``'s agreement check, ...).

    Attributes:
        choice: What was chosen and why (:class:`PrecisionChoice`: backend, precision, reason,
            agreement measured, candidates passed over), for logs and diagnostics.
    """

    def __init__(self, model_or_path: Any, backend: str = 'auto',
                 input_size: Optional[Sequence[int]] = None, device: str = 'cpu',
                 precision: str = 'auto', label_set: Union[str, LabelSet, None] = None,
                 threads: Optional[int] = None, agreement_bound: float = DEFAULT_BOUND,
                 streams: Union[int, str, None] = None, **backend_options: Any) -> None:
        size = check_size(input_size)
        problem = threads_problem(threads) or (size and work_problem(*size))
        if problem:
            raise LimitError(f'Segmenter: {problem}')
        if isinstance(model_or_path, (str, os.PathLike)):
            # Identified once (user_files: every OS error a refusal; MissingFileError is a
            # FileNotFoundError), then handed down: no layer below stats or parses it again.
            model_or_path = identify(model_or_path)
        requested = load_label_set(label_set) if label_set is not None else None
        if requested is not None:
            backend_options.setdefault('label_set', requested)
        self._backend: Optional[Backend] = create_backend(
            backend, model_or_path, device=device, precision=precision, threads=threads,
            input_size=size, agreement_bound=agreement_bound, streams=streams,
            **backend_options)
        be = self._backend
        self.choice: PrecisionChoice = be.choice or PrecisionChoice(
            be.name, be.precision, 'backend made directly')
        problem = size and work_problem(*size, num_classes=be.num_classes)
        if problem:  # the class count is known now: a 150-class model needs 5x the memory
            raise LimitError(f'Segmenter: {problem}')
        self._label_set = requested or getattr(be, 'label_set', None) \
            or LabelSet.generic(be.num_classes)
        if self._label_set.num_classes != be.num_classes:
            raise ValueError(f'label set {self._label_set.name} has '
                             f'{self._label_set.num_classes} classes but the model predicts '
                             f'{be.num_classes}')
        if be.fixed_size is not None:
            if size is not None and size != be.fixed_size:
                raise ValueError(f'input_size {size} does not match the model, which takes '
                                 f'{be.fixed_size} only (re-export it at {size})')
            size = be.fixed_size
        self._input_size = size
        self._palette = self._label_set.palette()
        self._dtype = label_dtype(be.num_classes, self._label_set.ignore_index)
        LOG.info('Segmenter: %s, label set %s (%d classes), input size %s', be.describe(),
                 self._label_set.name, be.num_classes,
                 'native' if size is None else f'{size[0]}x{size[1]}')

    @property
    def label_set(self) -> LabelSet:
        return self._label_set

    @property
    def backend_name(self) -> str:
        return self._require().name

    @property
    def backend(self) -> Backend:
        return self._require()

    @property
    def streams(self) -> int:
        """How many :meth:`segment_groups` calls run at once when made from as many threads
        (the backend's streams); 1: one at a time."""
        return self._require().streams

    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """``(H, W)`` every image is resized to for inference, or ``None`` (native size)."""
        return self._input_size

    def segment(self, image: Union[np.ndarray, ColorImage], bgr: bool = True,
                color: bool = False, overlay: bool = False, confidence: bool = False,
                overlay_alpha: float = 0.5, confidence_threshold: float = 0.0
                ) -> SegmentationResult:
        """Segment one image: a :class:`~bisenet_ros.images.ColorImage`, or a ``(H, W, 3)``
        uint8 array (BGR when ``bgr``, else RGB).

        ``confidence_threshold`` > 0 sets pixels whose max softmax is below it to the label
        set's ignore id. Raises ``ValueError`` for a wrong dtype, rank or channel count, and
        :class:`~bisenet_ros.limits.LimitError` (a ``ValueError``) for an image too large to
        segment in this machine's memory.
        """
        return self.segment_batch([image], bgr=bgr, color=color, overlay=overlay,
                                  confidence=confidence, overlay_alpha=overlay_alpha,
                                  confidence_threshold=confidence_threshold)[0]

    def segment_batch(self, images: Sequence[Union[np.ndarray, ColorImage]], bgr: bool = True,
                      color: bool = False, overlay: bool = False,
                      confidence: Union[bool, Sequence[bool]] = False,
                      overlay_alpha: float = 0.5, confidence_threshold: float = 0.0,
                      smooth: Optional[Sequence[Optional[Smoother]]] = None
                      ) -> List[SegmentationResult]:
        """Segment several images, one inference call per group of :meth:`segment_groups`;
        results come back in input order. The first failed call raises its error."""
        results: List[Optional[SegmentationResult]] = [None] * len(images)
        for group in self.segment_groups(images, bgr, color, overlay, confidence,
                                         overlay_alpha, confidence_threshold, smooth):
            if group.error is not None:
                raise group.error
            for i, res in group.pairs():
                results[i] = res
        return results  # type: ignore[return-value]

    def segment_groups(self, images: Sequence[Union[np.ndarray, ColorImage]], bgr: bool = True,
                       color: bool = False, overlay: bool = False,
                       confidence: Union[bool, Sequence[bool]] = False,
                       overlay_alpha: float = 0.5, confidence_threshold: float = 0.0,
                       smooth: Optional[Sequence[Optional[Smoother]]] = None
                       ) -> Iterator[GroupResult]:
        """Segment several images, yielding each inference call's results as soon as it returns.

        One call holds images of one network input size (``input_size``, or each image's own)
        and one channel order, at most the backend's ``max_batch``; the calls run smallest size
        first, then in input order. A call that fails (preprocessing, inference,
        postprocessing, or a :class:`~bisenet_ros.limits.LimitError` for its memory) yields its
        error and the next call still runs. The images and arguments are checked before the
        first call, and a bad one raises ``ValueError`` here.

        Args:
            images: :class:`~bisenet_ros.images.ColorImage` values (their own channel order,
                not checked again) or ``(H, W, 3)`` uint8 arrays (BGR when ``bgr``, else RGB).
            color, overlay: Also return the RGB colour mask, the overlay (in the image's
                channel order).
            confidence: Also return the confidence map: for every image, or one bool per
                image (computed in a call when any of its images wants it).
            overlay_alpha: Weight of the class colours in the overlay, in [0, 1].
            confidence_threshold: Pixels whose max softmax is below it get the ignore id.
            smooth: One entry per image, ``None`` or a callable that maps the image's
                ``(C, h, w)`` float32 logits at network resolution to the ``(C, h, w)`` class
                probabilities its labels and confidence are taken from (e.g. a temporal moving
                average, :class:`bisenet_ros.temporal_smoothing.CameraSmoothers`).
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise ValueError('segment_batch: expected a list of (H, W, 3) images, got one image '
                             f'{images.shape}; use segment()')
        checked = [as_color_image(img, bgr, f'image {i}') for i, img in enumerate(images)]
        if not 0.0 <= overlay_alpha <= 1.0:
            raise ValueError(f'overlay_alpha must be in [0, 1], got {overlay_alpha}')
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f'confidence_threshold must be in [0, 1], got '
                             f'{confidence_threshold}')
        wants = _per_image(confidence, len(checked), 'confidence flags')
        hooks = _per_image(smooth, len(checked), 'smoothers')
        options = _Options(color, overlay, overlay_alpha, confidence_threshold)
        return self._calls(checked, wants, hooks, options)

    def _calls(self, images: List[ColorImage], wants: List[bool],
               hooks: List[Optional[Smoother]], options: '_Options') -> Iterator[GroupResult]:
        """:meth:`segment_groups`'s calls, run one by one as the caller asks for them."""
        backend = self._require()
        groups: Dict[Tuple[Tuple[int, int], bool], List[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault((self._input_size or img.size, img.bgr), []).append(i)
        step = backend.max_batch or len(images)
        for (size, _), indices in sorted(groups.items(),
                                         key=lambda kv: (kv[0][0][0] * kv[0][0][1], kv[1][0])):
            for start in range(0, len(indices), step):
                chunk = indices[start:start + step]
                try:
                    problem = work_problem(size[0], size[1], len(chunk), backend.num_classes,
                                           any(wants[i] for i in chunk))
                    if problem:
                        raise LimitError(f'segment_batch: {problem}')
                    results = self._run([images[i] for i in chunk], [wants[i] for i in chunk],
                                        [hooks[i] for i in chunk], options)
                except Exception as exc:  # this call's images only; the next call still runs
                    yield GroupResult(chunk, [], exc)
                    continue
                yield GroupResult(chunk, results)

    def _run(self, images: List[ColorImage], wants: List[bool],
             hooks: List[Optional[Smoother]], options: '_Options') -> List[SegmentationResult]:
        backend = self._require()
        threshold = options.confidence_threshold
        t0 = time.perf_counter()
        batch, geometries = preprocess(images, self._label_set.mean, self._label_set.std,
                                       input_size=self._input_size)
        t1 = time.perf_counter()
        wanted = ('labels', 'confidence') if any(wants) or threshold > 0 else ('labels',)
        if any(hook is not None for hook in hooks):
            wanted += ('logits',)
        out = backend.infer(batch, wanted)
        for n, hook in enumerate(hooks):
            if hook is not None:  # labels and confidence from the smoothed probabilities
                probabilities = hook(out['logits'][n].astype(np.float32, copy=False))
                out['labels'][n] = argmax_labels(probabilities[None],
                                                 out['labels'].dtype)[0]
                if 'confidence' in out:
                    out['confidence'][n] = probabilities.max(axis=0)
        t2 = time.perf_counter()
        results = []
        for n, (img, geo) in enumerate(zip(images, geometries)):
            labels = resize_labels(out['labels'][n], geo.original_size)
            if labels.dtype != self._dtype:
                labels = labels.astype(self._dtype)
            conf = None
            if 'confidence' in out:
                conf = resize_confidence(out['confidence'][n].astype(np.float32, copy=False),
                                         geo.original_size)
                if threshold > 0:
                    labels = apply_threshold(np.array(labels), conf, threshold,
                                             self._label_set.ignore_index)
            color_mask = colorize_labels(labels, self._palette) \
                if options.color or options.overlay else None
            results.append(SegmentationResult(
                labels=labels,
                color=color_mask if options.color else None,
                overlay=blend_overlay(img.pixels, color_mask, options.overlay_alpha, img.bgr)
                if options.overlay else None,
                confidence=conf if wants[n] else None))
        t3 = time.perf_counter()
        timings = {'preprocess': t1 - t0, 'inference': t2 - t1, 'postprocess': t3 - t2}
        for res in results:
            res.timings = dict(timings)
        return results

    def close(self) -> None:
        """Release the backend; the segmenter cannot be used afterwards."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def _require(self) -> Backend:
        if self._backend is None:
            raise RuntimeError('Segmenter is closed')
        return self._backend

    def __enter__(self) -> 'Segmenter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
