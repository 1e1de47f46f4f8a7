"""Rare-class copy-paste (``train.copy_paste``): pixels of rare classes from other training frames
pasted onto a training sample.

With probability ``prob`` a sample gets 1 to ``max_sources`` source frames. For each, a class of
``classes`` is drawn uniformly among those that some other training frame contains, then one of
those frames uniformly; the source goes through the sample's own random scale, crop (placed
around a pixel of that class) and flip (:func:`.transforms.augment_geometry`), and its pixels of
``classes`` overwrite the sample's image and label at the same positions. Ignored pixels
(:data:`~.datasets.IGNORE`, crop padding included) are never pasted. Pasting happens before the
colour jitter and :func:`.transforms.photometric`, so pasted objects get the sample's colours.

Every draw comes from a generator of its own, seeded by the sample's seed and
:data:`PASTE_STREAM`: the sample's other augmentation draws the same numbers with and without
copy-paste, and a sample is still a pure function of ``(seed, iteration)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import functools
import logging
from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np

from ..labels import LabelSet
from .datasets import IGNORE
from .transforms import augment_geometry, AugmentConfig, Paste

LOGGER = logging.getLogger(__name__)

#: The keys of ``train.copy_paste``.
COPY_PASTE_KEYS = ('prob', 'classes', 'max_sources')
#: Appended to a sample's seed for the generator of its copy-paste draws (ASCII ``copy``).
PASTE_STREAM = 0x636F7079


class Frames(Protocol):
    """What copy-paste reads its sources from (a :class:`~.datasets.SegmentationDataset`)."""

    def __len__(self) -> int: ...

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class CopyPasteConfig:
    """Copy-paste parameters (see the module docstring).

    Attributes:
        prob: Probability that a sample gets pasted objects; 0 = off.
        classes: Train ids whose pixels are pasted.
        max_sources: Most source frames per sample (their number is uniform in 1..max_sources).
    """

    prob: float = 0.0
    classes: Tuple[int, ...] = ()
    max_sources: int = 1


def check_copy_paste(setting: Any) -> None:
    """Check a ``train.copy_paste`` mapping (class names are checked by :func:`copy_paste_config`).

    Raises:
        ValueError: not a mapping of :data:`COPY_PASTE_KEYS`, or a value out of range (named,
            with what was expected).
    """
    if not isinstance(setting, Mapping):
        raise ValueError(f'train.copy_paste must be a mapping of {", ".join(COPY_PASTE_KEYS)}, '
                         f'got {setting!r}')
    unknown = sorted(set(setting) - set(COPY_PASTE_KEYS))
    if unknown:
        raise ValueError(f'train.copy_paste: unknown key(s) {unknown}; expected some of '
                         f'{", ".join(COPY_PASTE_KEYS)}')
    prob = setting.get('prob', 0.0)
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
        raise ValueError(f'train.copy_paste.prob must be a number in [0, 1] (0 = off), got '
                         f'{prob!r}')
    classes = setting.get('classes', [])
    if not isinstance(classes, list) or not all(isinstance(n, str) and n for n in classes):
        raise ValueError(f'train.copy_paste.classes must be a list of class names, e.g. '
                         f'[pole, sign_symbol], got {classes!r}')
    if prob > 0 and not classes:
        raise ValueError(f'train.copy_paste.classes must name at least one class when '
                         f'train.copy_paste.prob > 0, got {classes!r}')
    sources = setting.get('max_sources', 1)
    if isinstance(sources, bool) or not isinstance(sources, int) or sources < 1:
        raise ValueError(f'train.copy_paste.max_sources must be an integer >= 1, got '
                         f'{sources!r}')


def copy_paste_config(setting: Mapping[str, Any], label_set: LabelSet) -> CopyPasteConfig:
    """``train.copy_paste`` as a :class:`CopyPasteConfig`; class names -> train ids.

    Raises:
        ValueError: see :func:`check_copy_paste`, or a class that ``label_set`` lacks.
    """
    check_copy_paste(setting)
    names = list(dict.fromkeys(setting.get('classes', [])))
    unknown = [n for n in names if n not in label_set.class_names]
    if unknown:
        raise ValueError(f'train.copy_paste.classes: {unknown} are not classes of label set '
                         f'{label_set.name}; expected some of {", ".join(label_set.class_names)}')
    return CopyPasteConfig(prob=float(setting.get('prob', 0.0)),
                           classes=tuple(label_set.class_names.index(n) for n in names),
                           max_sources=int(setting.get('max_sources', 1)))


def source_frames(frames: Frames, classes: Sequence[int]) -> Dict[int, np.ndarray]:
    """The frames that contain each class: train id -> sorted ``(n,)`` int64 frame indices.

    Reads every frame once (a cached dataset keeps them in memory for training anyway).
    """
    ids = list(classes)
    present = np.zeros((len(frames), len(ids)), bool)
    for index in range(len(frames)):
        label = frames.load(index)[1]
        present[index] = np.bincount(label.ravel(), minlength=256)[ids] > 0
    return {c: np.flatnonzero(present[:, j]) for j, c in enumerate(ids)}


def paste_pixels(image: np.ndarray, label: np.ndarray, source_image: np.ndarray,
                 source_label: np.ndarray, pasted: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Copy the source pixels whose label is a pasted class onto new copies of image and label.

    Args:
        image, label: Target, RGB ``(H, W, 3)`` uint8 and ``(H, W)`` uint8 train ids.
        source_image, source_label: Source, same layout; sizes may differ (the top-left overlap
            is used, aligned at pixel (0, 0)).
        pasted: ``(256,)`` bool, True for the train ids to paste (never :data:`IGNORE`).

    Returns:
        The target's image and label with the source's pixels in place; the inputs themselves
        when nothing is pasted (never written to).
    """
    h = min(label.shape[0], source_label.shape[0])
    w = min(label.shape[1], source_label.shape[1])
    mask = pasted[source_label[:h, :w]]
    if not mask.any():
        return image, label
    image, label = np.array(image), np.array(label)
    image[:h, :w][mask] = source_image[:h, :w][mask]
    label[:h, :w][mask] = source_label[:h, :w][mask]
    return image, label


class CopyPaste:
    """Pastes rare-class pixels of other frames onto augmented samples.

    Args:
        frames: The training frames (sources), e.g. the training dataset; indexed once here.
        cfg: What to paste and how often.
        augment_cfg: The samples' augmentation; sources get its scale, crop and flip.
        mean: Normalisation mean of the label set (crop padding colour).
    """

    def __init__(self, frames: Frames, cfg: CopyPasteConfig, augment_cfg: AugmentConfig,
                 mean: Sequence[float]) -> None:
        self.frames, self.cfg, self.mean = frames, cfg, tuple(mean)
        #: train id -> the frames that contain it
        self.sources = source_frames(frames, cfg.classes)
        self._pasted = np.zeros(256, bool)
        self._pasted[list(cfg.classes)] = True
        self._pasted[IGNORE] = False
        # a source's crop is placed around a pixel of its drawn class
        self._geometry = {c: replace(augment_cfg, focus_classes=(c,), focus_prob=1.0)
                          for c in cfg.classes}

    def for_sample(self, seed: Sequence[int], index: int) -> Paste:
        """The ``paste`` of :func:`.transforms.augment` for the sample of ``index`` with that
        augmentation seed: its own generator, and never the sample's own frame as a source."""
        rng = np.random.default_rng([*(int(s) for s in seed), PASTE_STREAM])
        return functools.partial(self.__call__, rng=rng, exclude=index)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
                 exclude: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Paste onto one geometrically augmented sample (inputs are not written to).

        Args:
            image, label: RGB ``(H, W, 3)`` uint8 and ``(H, W)`` uint8 train ids.
            rng: The sample's copy-paste generator.
            exclude: Frame index that must not be a source (the sample's own).
        """
        if rng.random() >= self.cfg.prob:
            return image, label
        eligible: List[Tuple[int, np.ndarray, int]] = []  # class, its frames, where exclude is
        for c in self.cfg.classes:
            frames = self.sources[c]
            at = int(np.searchsorted(frames, exclude)) if exclude is not None else len(frames)
            at = at if at < len(frames) and frames[at] == exclude else -1
            if len(frames) > (at >= 0):
                eligible.append((c, frames, at))
        if not eligible:
            return image, label
        for _ in range(int(rng.integers(1, self.cfg.max_sources + 1))):
            c, frames, at = eligible[int(rng.integers(len(eligible)))]
            pick = int(rng.integers(len(frames) - (at >= 0)))
            pick += int(0 <= at <= pick)  # skip the excluded frame
            source_image, source_label = self.frames.load(int(frames[pick]))
            source_image, source_label = augment_geometry(
                source_image, source_label, self._geometry[c], rng, self.mean)
            image, label = paste_pixels(image, label, source_image, source_label, self._pasted)
        return image, label

    def describe(self, class_names: Sequence[str]) -> str:
        """One line for the log: the source frames per class."""
        return ', '.join(f'{class_names[c]} {len(self.sources[c])}' for c in self.cfg.classes)


def build_copy_paste(cfg: CopyPasteConfig, frames: Frames, augment_cfg: AugmentConfig,
                     label_set: LabelSet) -> Optional[CopyPaste]:
    """The :class:`CopyPaste` of ``cfg`` (see :func:`copy_paste_config`) over ``frames``;
    ``None`` when off (``prob`` 0), in which case nothing is read or drawn."""
    if cfg.prob <= 0:
        return None
    paster = CopyPaste(frames, cfg, augment_cfg, label_set.mean)
    empty = [label_set.class_names[c] for c in cfg.classes if not len(paster.sources[c])]
    LOGGER.info('copy-paste: prob %.2f, 1 to %d sources; source frames per class: %s',
                cfg.prob, cfg.max_sources, paster.describe(label_set.class_names))
    if empty:
        LOGGER.warning('copy-paste: no training frame contains %s; never pasted',
                       ', '.join(empty))
    return paster
