"""Training augmentation and evaluation preprocessing (numpy + OpenCV).

All randomness comes from the ``numpy.random.Generator`` passed in, so a sample's augmentation
is a pure function of its seed (see :mod:`.sampler`): resumed and distributed runs see exactly the
same crops as an uninterrupted single-process run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .datasets import IGNORE

#: ``train.photometric`` presets: the photometric operations beyond the colour jitter (see
#: :class:`AugmentConfig`); ``strong`` is the candidate recipe of issue 22.
PHOTOMETRIC_PRESETS: Dict[str, Dict[str, float]] = {
    'strong': {'hue': 0.05, 'gamma': 0.3, 'blur_prob': 0.3, 'blur_sigma': 1.5,
               'noise_prob': 0.3, 'noise_std': 8.0},
}
#: the keys of a ``train.photometric`` mapping, all off (0) by default
PHOTOMETRIC_KEYS = ('hue', 'gamma', 'blur_prob', 'blur_sigma', 'noise_prob', 'noise_std')


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation parameters.

    Attributes:
        crop: Output ``(H, W)`` in pixels; ``None`` keeps the scaled image (no crop/pad).
        base_scale: Resize factor applied to every frame before the random scale.
        scale_range: Random scale factor range ``(lo, hi)``, uniform, times ``base_scale``.
        hflip: Probability of a horizontal flip.
        brightness, contrast, saturation: Colour jitter strengths (factor in ``1 +- x``).
        focus_classes: Train ids of rare classes that crops favour.
        focus_prob: Probability that a crop is placed around a random pixel of a random
            ``focus_classes`` class present in the scaled frame (uniform crops otherwise).
        hue: Hue shift, uniform in ``+-hue`` of the colour circle (0.05 = +-18 degrees).
        gamma: Gamma ``exp(u)``, ``u`` uniform in ``+-gamma``, on intensities in [0, 1].
        blur_prob, blur_sigma: Probability of a Gaussian blur; its sigma (pixels) uniform in
            ``[0.1, blur_sigma]``.
        noise_prob, noise_std: Probability of additive Gaussian noise; its standard deviation
            (uint8 levels) uniform in ``[0, noise_std]``.
    """

    crop: Optional[Tuple[int, int]] = (512, 1024)
    base_scale: float = 1.0
    scale_range: Tuple[float, float] = (0.5, 2.0)
    hflip: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    focus_classes: Tuple[int, ...] = ()
    focus_prob: float = 0.0
    hue: float = 0.0
    gamma: float = 0.0
    blur_prob: float = 0.0
    blur_sigma: float = 0.0
    noise_prob: float = 0.0
    noise_std: float = 0.0


def photometric_settings(setting: Any) -> Dict[str, float]:
    """``train.photometric`` (``null``, a preset name of :data:`PHOTOMETRIC_PRESETS` or a
    mapping of some :data:`PHOTOMETRIC_KEYS`) -> every key with its value (0 = off).

    Raises:
        ValueError: unknown preset or key, or a value out of range (named).
    """
    values = dict.fromkeys(PHOTOMETRIC_KEYS, 0.0)
    if setting is None:
        return values
    if isinstance(setting, str):
        if setting not in PHOTOMETRIC_PRESETS:
            raise ValueError(f'train.photometric: unknown preset {setting!r}; expected null, '
                             f'one of {sorted(PHOTOMETRIC_PRESETS)} or a mapping of '
                             f'{", ".join(PHOTOMETRIC_KEYS)}')
        setting = PHOTOMETRIC_PRESETS[setting]
    if not isinstance(setting, Mapping):
        raise ValueError(f'train.photometric must be null, a preset name or a mapping, got '
                         f'{setting!r}')
    for key, value in setting.items():
        if key not in values:
            raise ValueError(f'train.photometric: unknown key {key!r}; expected some of '
                             f'{", ".join(PHOTOMETRIC_KEYS)}')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or \
                (key.endswith('_prob') and value > 1) or (key == 'hue' and value > 0.5):
            raise ValueError(f'train.photometric.{key} must be a number >= 0 (a probability '
                             f'<= 1 for *_prob, <= 0.5 for hue), got {value!r}')
        values[key] = float(value)
    return values


def photometric(image: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Gamma, hue shift, Gaussian blur and Gaussian noise of :class:`AugmentConfig`, in that
    order, each drawing from ``rng`` only when it is on; RGB uint8 ``(H, W, 3)`` in and out."""
    out = image
    if cfg.gamma > 0:
        gamma = float(np.exp(rng.uniform(-cfg.gamma, cfg.gamma)))
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
        out = cv2.LUT(np.ascontiguousarray(out), lut)
    if cfg.hue > 0:
        shift = int(round(float(rng.uniform(-cfg.hue, cfg.hue)) * 180))  # OpenCV hue: 0..179
        if shift:
            hsv = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_RGB2HSV)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        sigma = float(rng.uniform(0.1, max(0.1, cfg.blur_sigma)))
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (0, 0), sigma)
    if cfg.noise_prob > 0 and rng.random() < cfg.noise_prob:
        std = float(rng.uniform(0.0, cfg.noise_std))
        noise = rng.standard_normal(out.shape, dtype=np.float32) * std
        out = np.clip(out.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)
    return out


def random_scale(image: np.ndarray, label: np.ndarray, factor: float
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Resize by ``factor``: image bilinear, label nearest."""
    h, w = label.shape
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    if size == (w, h):
        return image, label
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))


def pad_and_crop(image: np.ndarray, label: np.ndarray, crop: Tuple[int, int],
                 rng: np.random.Generator, fill: Sequence[int],
                 focus: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Pad (image ``fill``, label :data:`IGNORE`) to at least ``crop``, then a random crop;
    with ``focus`` (row, col) the crop is drawn among the windows that contain that pixel."""
    ch, cw = crop
    h, w = label.shape
    pad_h, pad_w = max(0, ch - h), max(0, cw - w)
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                   value=[int(v) for v in fill])
        label = cv2.copyMakeBorder(label, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                   value=IGNORE)
        h, w = label.shape
    if focus is None:
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
    else:
        row, col = focus
        top = int(rng.integers(max(0, row - ch + 1), min(h - ch, row) + 1))
        left = int(rng.integers(max(0, col - cw + 1), min(w - cw, col) + 1))
    return image[top:top + ch, left:left + cw], label[top:top + ch, left:left + cw]


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float) -> np.ndarray:
    """Random brightness, contrast and saturation, in a random order; uint8 in and out."""
    out = image.astype(np.float32)
    ops = [('b', brightness), ('c', contrast), ('s', saturation)]
    for i in rng.permutation(len(ops)):
        kind, strength = ops[int(i)]
        if strength <= 0:
            continue
        factor = float(rng.uniform(max(0.0, 1 - strength), 1 + strength))
        if kind == 'b':
            out *= factor
        elif kind == 'c':
            mean = float((out @ np.float32([0.299, 0.587, 0.114])).mean())
            out = (out - mean) * factor + mean
        else:
            gray = (out @ np.float32([0.299, 0.587, 0.114]))[..., None]
            out = (out - gray) * factor + gray
    return np.clip(out, 0, 255).astype(np.uint8)


def focus_pixel(label: np.ndarray, classes: Sequence[int], rng: np.random.Generator
                ) -> Optional[Tuple[int, int]]:
    """(row, col) of a random pixel of a random class of ``classes`` present in ``label``
    (each present class equally likely, whatever its area); ``None`` when none is present."""
    present = [c for c in classes if (label == c).any()]
    if not present:
        return None
    rows, cols = np.nonzero(label == present[int(rng.integers(len(present)))])
    pick = int(rng.integers(len(rows)))
    return int(rows[pick]), int(cols[pick])


def augment_geometry(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig,
                     rng: np.random.Generator, mean: Sequence[float]
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Random scale, pad + crop (favouring ``cfg.focus_classes``) and flip: the geometric half
    of :func:`augment`. The outputs may be views of the inputs: copy before writing."""
    lo, hi = cfg.scale_range
    image, label = random_scale(image, label, cfg.base_scale * float(rng.uniform(lo, hi)))
    if cfg.crop is not None:
        fill = [round(255 * m) for m in mean]
        focus = None
        if cfg.focus_prob > 0 and rng.random() < cfg.focus_prob:
            focus = focus_pixel(label, cfg.focus_classes, rng)
        image, label = pad_and_crop(image, label, tuple(cfg.crop), rng, fill,  # type: ignore
                                    focus)
    if rng.random() < cfg.hflip:
        image, label = image[:, ::-1], label[:, ::-1]
    return image, label


#: ``paste(image, label) -> (image, label)`` between the geometric and the colour steps of
#: :func:`augment` (see :mod:`.copy_paste`); it must not write into its inputs.
Paste = Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]


def augment(image: np.ndarray, label: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator,
            mean: Sequence[float], paste: Optional[Paste] = None
            ) -> Tuple[np.ndarray, np.ndarray]:
    """Scale, pad + crop, flip, ``paste`` (if given), colour jitter and :func:`photometric` of
    one RGB uint8 ``(H, W, 3)`` image and ``(H, W)`` uint8 label; returns uint8 arrays.

    ``paste`` draws from its own generator, not ``rng``: without it, or with it, every other
    step draws the same numbers.
    """
    image, label = augment_geometry(image, label, cfg, rng, mean)
    if paste is not None:
        image, label = paste(image, label)
    image = color_jitter(image, rng, cfg.brightness, cfg.contrast, cfg.saturation)
    image = photometric(image, cfg, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def to_tensor(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised float32 ``(3, H, W)``."""
    data = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return data.sub_(m).div_(s)
