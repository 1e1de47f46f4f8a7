"""Temporal smoothing: a per-camera exponential moving average of class probabilities.

Each new frame's probabilities ``p`` update the camera's state ``s`` as
``s = weight * p + (1 - weight) * s``; the labels are the argmax of ``s`` and the confidence its
maximum. ``weight`` 1 turns smoothing off (the state is not even kept); smaller weights average
over more frames (about ``1 / weight``), which steadies labels that flicker on a slow-moving
camera and lags behind (smears) what moves fast across the image.

The state starts again from the new frame when its size or class count changes, its
``frame_id`` changes, its stamp goes back by more than ``max_gap_s`` (a bag that loops), or its
stamp is more than ``max_gap_s`` after the previous one (a paused or dropped stream: the old
state no longer shows the scene). A frame older than the last one by less than ``max_gap_s``
arrived late (with several inference streams an older frame can finish after a newer one): it
leaves the state as it is and gets its own probabilities.

Memory: one ``(C, H, W)`` float32 state per camera, ``4 * C * H * W`` bytes at the network's
resolution: 7.6 MB for CamVid (11 classes) at 360x480, 13.5 MB at 480x640, 159 MB for
Cityscapes (19) at 1024x2048; refused above ``max_state_bytes``.

Numpy and OpenCV only; nothing here knows about ROS.
"""

from __future__ import annotations

import logging
import math
from typing import Dict, Optional, Tuple

import numpy as np

from .inference.postprocess import argmax_labels, label_dtype
from .limits import LimitError

LOG = logging.getLogger(__name__)

#: Default stamp gap, in seconds, beyond which the average starts again.
DEFAULT_MAX_GAP_S = 1.0
#: What :meth:`TemporalSmoother._reset_reason` says of a frame that arrived late (older than
#: the last one by at most ``max_gap_s``): not a reset, the state is left as it is.
LATE = 'late'
#: Default bound of one camera's state, in bytes (a 19-class 1024x2048 state is 159 MB).
DEFAULT_MAX_STATE_BYTES = 256 << 20


def check_weight(weight: float) -> float:
    """``weight`` as a float; ``ValueError`` unless it is in (0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) \
            or not 0.0 < float(weight) <= 1.0:
        raise ValueError(f'smoothing weight must be in (0, 1] (1 = off), got {weight!r}')
    return float(weight)


def check_bounds(max_gap_s: float, max_state_bytes: int = DEFAULT_MAX_STATE_BYTES) -> None:
    """``ValueError`` unless ``max_gap_s`` (seconds) and ``max_state_bytes`` are positive."""
    if isinstance(max_gap_s, bool) or not isinstance(max_gap_s, (int, float)) \
            or not 0 < max_gap_s < math.inf:
        raise ValueError(f'max_gap_s must be a finite number of seconds > 0, got {max_gap_s!r}')
    if isinstance(max_state_bytes, bool) or not isinstance(max_state_bytes, int) \
            or max_state_bytes <= 0:
        raise ValueError(f'max_state_bytes must be an int > 0, got {max_state_bytes!r}')


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of ``(C, H, W)`` logits, float32, summing to 1 over ``C``."""
    if not isinstance(logits, np.ndarray) or logits.ndim != 3 or logits.dtype.kind != 'f':
        raise ValueError(f'softmax: expected float logits (C, H, W), got {_describe(logits)}')
    import cv2
    out = np.subtract(logits, logits.max(axis=0, keepdims=True), dtype=np.float32)
    flat = out.reshape(out.shape[0] * out.shape[1], out.shape[2])
    cv2.exp(flat, dst=flat)  # several times faster than np.exp on one core
    out *= np.reciprocal(out.sum(axis=0, keepdims=True))
    return out


def labels_and_confidence(probabilities: np.ndarray, ignore_index: int = 0
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """``(C, H, W)`` probabilities -> ``(H, W)`` class ids (uint8, uint16 when ids exceed
    255; ties to the lowest id) and ``(H, W)`` float32 top-class probability in [0, 1].

    ``ignore_index``: the label set's ignore id, so the dtype matches the Segmenter's.
    """
    if not isinstance(probabilities, np.ndarray) or probabilities.ndim != 3:
        raise ValueError('labels_and_confidence: expected probabilities (C, H, W), got '
                         f'{_describe(probabilities)}')
    labels = argmax_labels(probabilities[None], label_dtype(probabilities.shape[0],
                                                            ignore_index))[0]
    return labels, probabilities.max(axis=0).astype(np.float32, copy=False)


class TemporalSmoother:
    """The moving average of one camera's class probabilities (see the module doc).

    Args:
        weight: Weight of the newest frame, in (0, 1]; 1 = off.
        max_gap_s: A stamp more than this many seconds after the previous one starts again.
        max_state_bytes: Largest state accepted, in bytes.
        name: The camera, for messages.
    """

    def __init__(self, weight: float, max_gap_s: float = DEFAULT_MAX_GAP_S,
                 max_state_bytes: int = DEFAULT_MAX_STATE_BYTES, name: str = 'camera') -> None:
        self.weight = check_weight(weight)
        check_bounds(max_gap_s, max_state_bytes)
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.max_state_bytes = int(max_state_bytes)
        self.name = name
        self._state: Optional[np.ndarray] = None
        self._stamp_ns = 0
        self._frame_id = ''
        #: Frames averaged into the state since the last reset (0: empty).
        self.frames = 0
        #: Why a state was last dropped (``None`` while none was).
        self.last_reset: Optional[str] = None
        #: States dropped since construction, by reason (``'size'``, ``'frame_id'``,
        #: ``'stamp backwards'``, ``'stamp gap'``, ``'off'`` or the caller's).
        self.resets: Dict[str, int] = {}

    @property
    def state_bytes(self) -> int:
        """Bytes held by the state now."""
        return 0 if self._state is None else int(self._state.nbytes)

    def set_weight(self, weight: float) -> None:
        """Change the weight (e.g. a parameter update); the state is kept unless it is 1."""
        self.weight = check_weight(weight)
        if self.weight == 1.0:
            self.reset('off')

    def reset(self, reason: str = 'requested') -> None:
        """Forget the state; the next frame starts the average again. A dropped state is
        counted in :attr:`resets` under ``reason``."""
        if self._state is not None:
            self.resets[reason] = self.resets.get(reason, 0) + 1
            self.last_reset = reason
        self._state = None
        self.frames = 0

    def update(self, scores: np.ndarray, stamp_ns: int, frame_id: str = '',
               logits: bool = False) -> np.ndarray:
        """Add one frame; returns the smoothed ``(C, H, W)`` float32 probabilities.

        Args:
            scores: ``(C, H, W)`` float probabilities (each pixel summing to 1), or logits
                with ``logits=True`` (a softmax is applied first).
            stamp_ns: The frame's header stamp, nanoseconds.
            frame_id: The frame's header frame_id.

        The array returned is the camera's state: read it (or copy it) before the next
        :meth:`update`, never write to it. With weight 1 it is the frame's own probabilities.

        Raises:
            ValueError: not a float ``(C, H, W)`` array; :class:`~bisenet_ros.limits.LimitError`
                (a ``ValueError``) when the state would exceed ``max_state_bytes``.
        """
        if not isinstance(scores, np.ndarray) or scores.ndim != 3 or scores.dtype.kind != 'f' \
                or 0 in scores.shape:
            raise ValueError(f'{self.name}: expected float (C, H, W) '
                             f"{'logits' if logits else 'probabilities'}, got "
                             f'{_describe(scores)}')
        probabilities = softmax(scores) if logits else scores.astype(np.float32, copy=False)
        if self.weight == 1.0:
            self._remember(stamp_ns, frame_id)
            return probabilities
        need = 4 * probabilities.size
        if need > self.max_state_bytes:
            raise LimitError(f'{self.name}: smoothing a {probabilities.shape} frame needs '
                             f'{need / 2**20:.0f} MiB, more than max_state_bytes '
                             f'{self.max_state_bytes / 2**20:.0f} MiB (use a smaller input '
                             'size or turn smoothing off)')
        reason = self._reset_reason(probabilities.shape, int(stamp_ns), frame_id)
        if reason == LATE:
            LOG.debug('%s: a frame %d ns older than the last one leaves the state as it is',
                      self.name, self._stamp_ns - int(stamp_ns))
            return probabilities
        if reason is not None:
            LOG.debug('%s: smoothing starts again (%s)', self.name, reason)
            self.reset(reason)
        if self._state is None:
            self._state = np.array(probabilities, np.float32, order='C')
        else:
            self._blend(probabilities)
        self.frames += 1
        self._remember(stamp_ns, frame_id)
        return self._state

    def _blend(self, probabilities: np.ndarray) -> None:
        import cv2
        state = self._state
        assert state is not None
        c, h, w = state.shape
        flat_state = state.reshape(c * h, w)
        new = np.ascontiguousarray(probabilities).reshape(c * h, w)
        cv2.addWeighted(new, self.weight, flat_state, 1.0 - self.weight, 0.0, dst=flat_state)

    def _reset_reason(self, shape: Tuple[int, ...], stamp_ns: int,
                      frame_id: str) -> Optional[str]:
        """Why the state starts again with this frame, :data:`LATE` when the frame leaves it
        as it is, or None (it is blended in)."""
        if self._state is None:
            return None
        if self._state.shape != shape:
            return 'size'
        if frame_id != self._frame_id:
            return 'frame_id'
        if stamp_ns < self._stamp_ns:
            return LATE if self._stamp_ns - stamp_ns <= self.max_gap_ns else 'stamp backwards'
        if stamp_ns - self._stamp_ns > self.max_gap_ns:
            return 'stamp gap'
        return None

    def _remember(self, stamp_ns: int, frame_id: str) -> None:
        self._stamp_ns = int(stamp_ns)
        self._frame_id = frame_id


class CameraSmoothers:
    """One :class:`TemporalSmoother` per camera, made on a camera's first frame.

    Args:
        weight, max_gap_s, max_state_bytes: As :class:`TemporalSmoother`, for every camera.
    """

    def __init__(self, weight: float = 1.0, max_gap_s: float = DEFAULT_MAX_GAP_S,
                 max_state_bytes: int = DEFAULT_MAX_STATE_BYTES) -> None:
        self.weight = check_weight(weight)
        check_bounds(max_gap_s, max_state_bytes)
        self.max_gap_s = max_gap_s
        self.max_state_bytes = max_state_bytes
        self._cameras: Dict[str, TemporalSmoother] = {}

    @property
    def enabled(self) -> bool:
        """Whether smoothing is on (weight below 1)."""
        return self.weight < 1.0

    @property
    def state_bytes(self) -> int:
        """Bytes held by every camera's state."""
        return sum(s.state_bytes for s in self._cameras.values())

    def camera(self, name: str) -> TemporalSmoother:
        """The smoother of camera ``name`` (made now if new)."""
        smoother = self._cameras.get(name)
        if smoother is None:
            smoother = TemporalSmoother(self.weight, self.max_gap_s, self.max_state_bytes, name)
            self._cameras[name] = smoother
        return smoother

    def update(self, name: str, scores: np.ndarray, stamp_ns: int, frame_id: str = '',
               logits: bool = False) -> np.ndarray:
        """:meth:`TemporalSmoother.update` of camera ``name``."""
        return self.camera(name).update(scores, stamp_ns, frame_id, logits=logits)

    def set_weight(self, weight: float) -> None:
        """New weight for every camera (1 frees every state)."""
        self.weight = check_weight(weight)
        for smoother in self._cameras.values():
            smoother.set_weight(weight)

    def remove(self, name: str) -> None:
        """Forget camera ``name`` (e.g. its subscription was removed)."""
        self._cameras.pop(name, None)

    def reset(self, reason: str = 'requested') -> None:
        """Forget every camera's state (e.g. a new model)."""
        for smoother in self._cameras.values():
            smoother.reset(reason)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f'{value.dtype} {value.shape}'
    return type(value).__name__
