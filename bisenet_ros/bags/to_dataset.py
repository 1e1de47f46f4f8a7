"""A robot's bag -> a training dataset folder that ``bisenet train`` reads (``kind: folder``).

Frames of one image topic are chosen by stride (every n-th) or by scene change (a frame is kept
when the mean absolute difference of its small grey thumbnail from the last kept frame's is at
least a threshold), optionally labelled by a teacher (a callable: BGR image -> class ids and
confidence; pixels below a confidence threshold get the label set's ignore id), and written as::

    <output>/
      train_images/<stem>.png   val_images/<stem>.png     (every ``val_every``-th kept frame)
      train_labels/<stem>.png   val_labels/<stem>.png     (with a teacher: class ids, mono8)
      label_set.yaml            (with a teacher: the teacher's classes)
      train.yaml                (dataset section for ``bisenet train --config``)
      manifest.json             (source bag, topic, stamps, selection rule, teacher)

``<stem>`` is ``<frame index in the topic, 6 digits>_<header stamp ns>``. Pure Python over the
bag reader; the teacher is built by the caller (``bisenet bag-to-dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
from pathlib import Path
import shutil
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from . import messages
from .reader import BagReader

LOG = logging.getLogger(__name__)

RULES = ('stride', 'scene-change')
#: Width (px) of the grey thumbnails compared for scene change.
THUMB_WIDTH = 64
#: A teacher: BGR ``(H, W, 3)`` uint8 -> (class ids ``(H, W)`` integer, confidence ``(H, W)``
#: float in 0..1).
Teacher = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


def thumbnail(bgr: np.ndarray) -> np.ndarray:
    """Grey ``(h, 64)`` float32 in 0..1 of a BGR ``(H, W, 3)`` uint8 image (area resize)."""
    import cv2
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError(f'expected a BGR (H, W, 3) uint8 image, got {bgr.shape} {bgr.dtype}')
    height = max(1, round(bgr.shape[0] * THUMB_WIDTH / bgr.shape[1]))
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA) \
        .astype(np.float32) / 255.0


def scene_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0..1) of two thumbnails; 1.0 when their shapes differ."""
    return 1.0 if a.shape != b.shape else float(np.abs(a - b).mean())


@dataclass
class FrameSelector:
    """Which frames to keep: ``rule`` ``'stride'`` (index % stride == 0) or ``'scene-change'``
    (difference from the last kept frame >= ``threshold``; the first frame is kept)."""

    rule: str = 'stride'
    stride: int = 1
    threshold: float = 0.08

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f'selection rule must be one of {RULES}, got {self.rule!r}')
        if self.stride < 1:
            raise ValueError(f'stride must be >= 1, got {self.stride}')
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f'scene-change threshold must be in (0, 1], got {self.threshold}')
        self._last: Optional[np.ndarray] = None

    def keep(self, index: int, bgr: np.ndarray) -> bool:
        """Whether frame ``index`` (its BGR image) is kept; call in frame order."""
        if self.rule == 'stride':
            return index % self.stride == 0
        thumb = thumbnail(bgr)
        if self._last is not None and scene_difference(thumb, self._last) < self.threshold:
            return False
        self._last = thumb
        return True

    def describe(self) -> Dict[str, Any]:
        """The rule and its parameter, for the manifest."""
        if self.rule == 'stride':
            return {'rule': 'stride', 'stride': self.stride}
        return {'rule': 'scene-change', 'threshold': self.threshold,
                'measure': f'mean abs difference of {THUMB_WIDTH}-px-wide grey thumbnails '
                           '(0..1) from the last kept frame'}


def _prepare(output: Path, overwrite: bool) -> None:
    if output.exists():
        if not output.is_dir():
            raise ValueError(f'output {output}: exists and is not a folder')
        if any(output.iterdir()):
            if not overwrite:
                raise ValueError(f'output {output}: not empty (use --force to replace it)')
            if not (output / 'manifest.json').is_file():
                raise ValueError(f'output {output}: not empty and not a dataset written by '
                                 'bag-to-dataset (no manifest.json); refusing to delete it')
            shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def _write_png(path: Path, array: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(str(path), array):
        raise OSError(f'cannot write {path}')


def bag_to_dataset(bag: Union[str, Path], output: Union[str, Path], image_topic: str, *,
                   selector: Optional[FrameSelector] = None, max_frames: Optional[int] = None,
                   teacher: Optional[Teacher] = None, teacher_info: Optional[Dict] = None,
                   label_set: Any = None, confidence_threshold: float = 0.0,
                   val_every: int = 0, overwrite: bool = False,
                   reader_backend: str = 'auto', init_model: Optional[str] = None
                   ) -> Dict[str, Any]:
    """Write the frames of ``image_topic`` chosen by ``selector`` to the dataset ``output``.

    Args:
        teacher: Labels each kept frame; with it ``label_set`` (a ``LabelSet``, the teacher's
            classes) is required and pixels whose confidence is below
            ``confidence_threshold`` get ``label_set.ignore_index``.
        teacher_info: What the teacher is (model, scales, flip), for the manifest.
        val_every: Every n-th kept frame goes to ``val_*`` instead of ``train_*`` (0: none).
        max_frames: Stop after this many kept frames.
        init_model: Checkpoint ``train.yaml`` fine-tunes from (``model.init``; e.g. the
            teacher, the model the robot runs now).

    Returns:
        The manifest (also written to ``output/manifest.json``).
    """
    selector = selector or FrameSelector()
    if teacher is not None and label_set is None:
        raise ValueError('a teacher needs the label set of its classes')
    if not 0.0 <= confidence_threshold <= 1.0:
        raise ValueError(f'confidence threshold must be in 0..1, got {confidence_threshold}')
    if val_every < 0 or (max_frames is not None and max_frames < 1):
        raise ValueError(f'val_every must be >= 0 and max_frames >= 1, got {val_every}, '
                         f'{max_frames}')
    if label_set is not None and label_set.ignore_index > 255:
        raise ValueError(f'label set {label_set.name}: ignore id {label_set.ignore_index} '
                         'does not fit 8-bit label PNGs')
    out = Path(output)
    _prepare(out, overwrite)
    splits = ('train', 'val') if val_every else ('train',)
    for split in splits:
        (out / f'{split}_images').mkdir()
        if teacher is not None:
            (out / f'{split}_labels').mkdir()
    frames: List[Dict[str, Any]] = []
    ignored = total = 0
    with BagReader(bag, backend=reader_backend) as reader:
        reader.require_topic(image_topic, messages.IMAGE_TYPES)
        for index, msg in enumerate(reader.messages([image_topic])):
            if max_frames is not None and len(frames) >= max_frames:
                break
            decoded = msg.decode()
            bgr = messages.image_msg_to_array(decoded)
            if bgr.ndim == 2:
                bgr = np.repeat(bgr[:, :, None], 3, axis=2)
            if bgr.dtype != np.uint8:
                raise ValueError(f'{image_topic}: frame {index} is {bgr.dtype}; 8-bit colour '
                                 'or mono images are needed')
            if not selector.keep(index, bgr):
                continue
            stamp = messages.stamp_to_ns(decoded.header.stamp)
            stem = f'{index:06d}_{stamp}'
            split = 'val' if val_every and len(frames) % val_every == val_every - 1 else 'train'
            _write_png(out / f'{split}_images' / f'{stem}.png', bgr)
            entry = {'stem': stem, 'split': split, 'index': index, 'stamp_ns': stamp,
                     'size': [int(bgr.shape[0]), int(bgr.shape[1])]}
            if teacher is not None:
                ids, confidence = teacher(bgr)
                if ids.shape != bgr.shape[:2] or confidence.shape != bgr.shape[:2]:
                    raise ValueError(f'teacher returned {ids.shape} / {confidence.shape} for a '
                                     f'{bgr.shape[:2]} frame')
                labels = ids.astype(np.uint8)
                low = confidence < confidence_threshold
                labels[low] = label_set.ignore_index
                _write_png(out / f'{split}_labels' / f'{stem}.png', labels)
                entry['ignored_share'] = round(float(low.mean()), 4)
                ignored += int(low.sum())
                total += low.size
            frames.append(entry)
    if not frames:
        raise ValueError(f'bag {bag}: no frame of {image_topic} was kept')
    if 'val' in splits and not any(f['split'] == 'val' for f in frames):
        (out / 'val_images').rmdir()
        if teacher is not None:
            (out / 'val_labels').rmdir()
        splits = ('train',)
    dataset: Dict[str, Any] = {'kind': 'folder'}
    if label_set is not None:
        (out / 'label_set.yaml').write_text(_label_set_yaml(label_set))
        dataset['label_set'] = str((out / 'label_set.yaml').resolve())
    for split in splits:
        dataset[f'{split}_images'] = str((out / f'{split}_images').resolve())
        if teacher is not None:
            dataset[f'{split}_labels'] = str((out / f'{split}_labels').resolve())
    if 'val' not in splits:
        dataset['val_split'] = None
    _write_train_config(out / 'train.yaml', dataset, teacher is not None, init_model)
    manifest = {
        'source': {'bag': str(Path(bag).resolve()), 'topic': image_topic,
                   'reader': reader_backend},
        'selection': {**selector.describe(), 'max_frames': max_frames, 'val_every': val_every},
        'teacher': None if teacher is None else {
            **(teacher_info or {}), 'confidence_threshold': confidence_threshold,
            'ignore_index': int(label_set.ignore_index),
            'ignored_share': round(ignored / total, 4) if total else 0.0},
        'label_set': None if label_set is None else label_set.name,
        'frames': frames,
        'dataset': dataset,
    }
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    LOG.info('wrote %d frames of %s to %s (%s)', len(frames), image_topic, out,
             'labelled by the teacher' if teacher else 'images only')
    return manifest


def _label_set_yaml(label_set: Any) -> str:
    import yaml
    return yaml.safe_dump(label_set.to_dict(), sort_keys=False)


def _write_train_config(path: Path, dataset: Dict[str, Any], labelled: bool,
                        init_model: Optional[str]) -> None:
    import yaml
    note = ('# bisenet train --config THIS_FILE [--set model.init=OLD_MODEL.pt to fine-tune]\n'
            if labelled else
            '# images only: put class-id PNGs (same stems) in train_labels/ (and val_labels/),\n'
            '# add train_labels/val_labels and label_set below, then bisenet train --config\n')
    config: Dict[str, Any] = {'dataset': dataset}
    if init_model:
        config['model'] = {'init': str(init_model)}
    path.write_text(note + yaml.safe_dump(config, sort_keys=False))


__all__ = ['bag_to_dataset', 'FrameSelector', 'RULES', 'scene_difference', 'Teacher',
           'thumbnail']
