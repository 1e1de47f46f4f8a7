"""Checks a candidate model must pass before it serves: tensor layout, class count against the
label set, and a test run on one small frame.

:func:`check_layout` reads only shapes (no runtime), so :func:`~.model_file.identify` refuses a
channels-last ONNX graph before any backend runs it; :func:`check_candidate` runs a loaded
:class:`~bisenet_ros.inference.Segmenter` once and says what is wrong with its output. Every
problem is a :class:`ModelCheckError` naming what was expected and what was found.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np

#: A tensor dimension: a size, a symbolic name, or ``None`` when unknown.
Dim = Union[int, str, None]
Shape = Tuple[Dim, ...]
#: Outputs whose layout is ``(N, H, W)``; any other 4-D output is taken as ``(N, C, H, W)``.
PER_PIXEL_OUTPUTS = ('labels', 'confidence')
#: Height and width of the test frame (the network's own input size is used when it has one).
TEST_FRAME = (64, 96)


class ModelCheckError(ValueError):
    """A model or label set that must not serve; the message says why."""


def _same(a: Dim, b: Dim) -> bool:
    """Whether two dimensions may be equal (unknown matches anything)."""
    return a is None or b is None or a == b


def check_layout(input_shape: Shape, outputs: Dict[str, Shape], where: str = 'model') -> None:
    """Refuse anything but an ``(N, 3, H, W)`` input with ``(N, C, H, W)`` logits and
    ``(N, H, W)`` labels/confidence at the input's resolution.

    Raises :class:`ModelCheckError` naming the layout found (channels-last input or logits
    in particular, which would otherwise run as a model with H or W classes).
    """
    if len(input_shape) != 4:
        raise ModelCheckError(f'{where}: input shape {list(input_shape)}, expected (N, 3, H, W)')
    if input_shape[1] != 3 and input_shape[3] == 3:
        raise ModelCheckError(f'{where}: channels-last input {list(input_shape)} (N, H, W, 3); '
                              'expected channels-first (N, 3, H, W): re-export it NCHW')
    if not _same(input_shape[1], 3):
        raise ModelCheckError(f'{where}: input shape {list(input_shape)}, expected 3 channels '
                              'in (N, 3, H, W)')
    size = input_shape[2:]
    for name, shape in outputs.items():
        if name in PER_PIXEL_OUTPUTS:
            if len(shape) != 3 or not all(map(_same, shape[1:], size)):
                raise ModelCheckError(f'{where}: output {name} shape {list(shape)}, expected '
                                      f'(N, H, W) = (N, {size[0]}, {size[1]})')
            continue
        if len(shape) != 4:
            continue  # not a per-pixel output (metadata, auxiliary heads): not read
        if all(map(_same, shape[2:], size)) and isinstance(shape[1], int) and shape[1] > 0:
            continue
        if all(map(_same, shape[1:3], size)):
            raise ModelCheckError(f'{where}: channels-last output {name} {list(shape)} '
                                  '(N, H, W, C); expected (N, C, H, W) logits at the input '
                                  f'size {list(size)}: re-export it NCHW')
        raise ModelCheckError(f'{where}: output {name} shape {list(shape)}, expected '
                              f'(N, C, H, W) with a fixed class count C at the input size '
                              f'{list(size)}')


def check_label_set(label_set: Any, num_classes: int) -> None:
    """The label set fits a model predicting ``num_classes`` classes.

    (Colours in 0..255 and a finite positive normalisation are checked when a ``LabelSet`` is
    built.)
    """
    if label_set.num_classes != num_classes:
        raise ModelCheckError(f'label set {label_set.name} has {label_set.num_classes} classes '
                              f'but the model predicts {num_classes}')


def probe_frame(size: Optional[Sequence[int]] = None) -> np.ndarray:
    """A deterministic ``(H, W, 3)`` uint8 BGR frame with gradients (``size`` or
    :data:`TEST_FRAME`)."""
    h, w = size or TEST_FRAME
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                     (x + y) * 127 // max(h + w - 2, 1)], -1).astype(np.uint8)


def check_candidate(segmenter: Any) -> None:
    """Run ``segmenter`` once on a small frame and check what comes out: labels at the frame's
    size within the class ids (or the ignore id), confidence finite in [0, 1].

    Raises :class:`ModelCheckError` with the reason (an exception of the run is wrapped).
    """
    ls = segmenter.label_set
    check_label_set(ls, segmenter.backend.num_classes)
    frame = probe_frame()
    try:
        result = segmenter.segment(frame, confidence=True)
    except Exception as exc:  # whatever the runtime raises, the candidate is refused
        raise ModelCheckError(f'test run on a {frame.shape[0]}x{frame.shape[1]} frame failed: '
                              f'{type(exc).__name__}: {exc}') from exc
    labels, confidence = result.labels, result.confidence
    if labels.shape != frame.shape[:2]:
        raise ModelCheckError(f'test run: labels {labels.shape} for a {frame.shape[:2]} frame')
    bad = (labels >= ls.num_classes) & (labels != ls.ignore_index)
    if bad.any():
        raise ModelCheckError(f'test run: class id {int(labels[bad].max())} outside the '
                              f'{ls.num_classes} classes of label set {ls.name}')
    if confidence is None or confidence.shape != frame.shape[:2]:
        raise ModelCheckError(f'test run: confidence {getattr(confidence, "shape", None)} for '
                              f'a {frame.shape[:2]} frame')
    if not np.isfinite(confidence).all():
        raise ModelCheckError('test run: the model produced non-finite values (NaN or inf '
                              'logits, e.g. NaN weights)')
    if confidence.min() < 0 or confidence.max() > 1 + 1e-5:
        raise ModelCheckError(f'test run: confidence in {confidence.min()}..{confidence.max()},'
                              ' expected 0..1')
