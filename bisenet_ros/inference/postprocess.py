"""Network output -> label map, colour mask, overlay and confidence at the image's resolution.

Only numpy and OpenCV. Class ids are only ever resized with nearest neighbour.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..images import reverse_channels

Size = Tuple[int, int]


def label_dtype(num_classes: int, ignore_index: int = 0) -> np.dtype:
    """uint8 when every id (classes and the ignore id) fits, else uint16."""
    return np.dtype(np.uint8 if max(num_classes - 1, ignore_index) <= 255 else np.uint16)


def argmax_labels(logits: np.ndarray, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Class ids of ``(N, C, H, W)`` logits -> ``(N, H, W)`` (uint8/uint16 by ``C``).

    A running maximum over the classes (ties go to the lowest id, as ``np.argmax``); about twice
    as fast as ``np.argmax(axis=1)`` on contiguous NCHW data.
    """
    if logits.ndim != 4:
        raise ValueError(f'argmax_labels: expected logits (N, C, H, W), got {logits.shape}')
    n, c, h, w = logits.shape
    out_dtype = np.dtype(dtype) if dtype is not None else label_dtype(c)
    labels = np.zeros((n, h, w), out_dtype)
    best = np.empty((h, w), logits.dtype)
    greater = np.empty((h, w), bool)
    for i in range(n):
        np.copyto(best, logits[i, 0])
        for k in range(1, c):
            np.greater(logits[i, k], best, out=greater)
            np.copyto(labels[i], out_dtype.type(k), where=greater)
            np.maximum(best, logits[i, k], out=best)
    return labels


def max_softmax(logits: np.ndarray) -> np.ndarray:
    """Per-pixel max softmax probability of ``(N, C, H, W)`` logits -> ``(N, H, W)`` float32."""
    if logits.ndim != 4:
        raise ValueError(f'max_softmax: expected logits (N, C, H, W), got {logits.shape}')
    top = logits.max(axis=1, keepdims=True)
    total = np.exp(logits - top, dtype=np.float32).sum(axis=1)
    return (1.0 / total).astype(np.float32)


def resize_labels(labels: np.ndarray, size: Size) -> np.ndarray:
    """Nearest-neighbour resize of a ``(H, W)`` id map to ``size`` ``(H, W)``; never blends ids."""
    if labels.shape[:2] == tuple(size):
        return labels
    import cv2
    if labels.dtype in (np.uint8, np.uint16):
        return cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(labels.astype(np.int32), (size[1], size[0]),
                      interpolation=cv2.INTER_NEAREST_EXACT).astype(labels.dtype)


def resize_confidence(confidence: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear resize of a ``(H, W)`` float32 map, clipped to [0, 1]."""
    if confidence.shape[:2] == tuple(size):
        return confidence
    import cv2
    out = cv2.resize(confidence, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


def apply_threshold(labels: np.ndarray, confidence: np.ndarray, threshold: float,
                    ignore_index: int) -> np.ndarray:
    """Set ids whose confidence is below ``threshold`` to ``ignore_index`` (in place, returned)."""
    if threshold > 0.0:
        labels[confidence < threshold] = ignore_index
    return labels


def colorize_labels(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """``(H, W)`` ids -> ``(H, W, 3)`` uint8 RGB via a ``(K, 3)`` palette (ids >= K clip).

    One 4-byte lookup per pixel, then OpenCV drops the fourth byte: 0.4 ms at 640x480 on an AMD
    EPYC, where ``np.take`` of 3-byte rows took 2.0 ms and a 3-channel ``cv2.LUT`` 0.9 ms.
    """
    import cv2
    padded = np.zeros((len(palette), 4), np.uint8)
    padded[:, :3] = palette
    rgba = np.take(padded.view(np.uint32).ravel(), labels, mode='clip')
    return cv2.cvtColor(rgba.view(np.uint8).reshape(labels.shape + (4,)), cv2.COLOR_RGBA2RGB)


def blend_overlay(image: np.ndarray, color_rgb: np.ndarray, alpha: float, bgr: bool,
                  out_bgr: Optional[bool] = None) -> np.ndarray:
    """``(1 - alpha) * image + alpha * colour``: ``(H, W, 3)`` uint8.

    Blended in the image's channel order (BGR when ``bgr``; the RGB colours are reversed to
    match a BGR image); the result keeps that order, or is reversed once into ``out_bgr``'s
    (True: BGR, False: RGB) where it differs.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'overlay_alpha must be in [0, 1], got {alpha}')
    import cv2
    color = reverse_channels(color_rgb) if bgr else color_rgb
    blended = cv2.addWeighted(np.ascontiguousarray(image), 1.0 - alpha,
                              np.ascontiguousarray(color), alpha, 0.0)
    if out_bgr is None or bool(out_bgr) == bool(bgr):
        return blended
    return reverse_channels(blended)
