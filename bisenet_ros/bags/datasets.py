"""Datasets that ``bisenet make-bag`` turns into bags (loaders from ``training.datasets``).

Every dataset yields RGB ``(H, W, 3)`` uint8 images and ``(H, W)`` uint8 train ids with 255 for
unlabelled pixels, whatever the dataset's own void value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..labels import LabelSet, load_label_set
from ..training import datasets as ds

KINDS = ('camvid', 'cityscapes', 'folder', 'demo')


def demo_frames_dir() -> Path:
    """The packaged demo frames (15 CamVid val frames, see ``data/demo/NOTICE.md``)."""
    return Path(__file__).resolve().parent.parent / 'data' / 'demo'


def demo_dataset() -> ds.SegmentationDataset:
    """The packaged demo frames: ``<name>.jpg`` image and ``<name>.png`` labels side by side."""
    folder = demo_frames_dir()
    images = sorted(folder.glob('*.jpg'))
    if not images:
        raise FileNotFoundError(f'demo frames not found in {folder} (broken install?)')
    pairs = [(p, p.with_suffix('.png')) for p in images]
    missing = [str(label) for _, label in pairs if not label.is_file()]
    if missing:
        raise FileNotFoundError(f'demo labels missing: {missing[:3]}')
    labels = load_label_set('camvid')
    return ds.SegmentationDataset(pairs, ds.identity_lut(labels.num_classes, labels.ignore_index),
                                  labels, name='demo')


def open_dataset(kind: str, root: Optional[str] = None, split: str = 'val',
                 sequence: Optional[str] = None, images: Optional[str] = None,
                 labels: Optional[str] = None,
                 label_set: Union[str, LabelSet, None] = None) -> ds.SegmentationDataset:
    """A dataset split, optionally restricted to one video sequence (file-name prefix).

    Args:
        kind: ``camvid`` / ``cityscapes`` (need ``root``), ``folder`` (``images``, ``labels``,
            ``label_set``) or ``demo`` (the packaged frames).
        sequence: keep files whose name starts with it (CamVid ``0016E5``, Cityscapes city).
    """
    if kind == 'demo':
        dataset = demo_dataset()
    elif kind in ('camvid', 'cityscapes'):
        if not root:
            raise ValueError(f'--root (the {kind} folder) is required for --dataset {kind}')
        builder = ds.camvid if kind == 'camvid' else ds.cityscapes
        dataset = builder(root, split, label_set=label_set or kind)
    elif kind == 'folder':
        if not images or not labels:
            raise ValueError('--dataset folder needs --images DIR and --labels DIR')
        dataset = ds.image_folder(images, labels, label_set or 'camvid')
    else:
        raise ValueError(f"dataset kind must be one of {', '.join(KINDS)}, got '{kind}'")
    if sequence:
        kept = [pair for pair in dataset.pairs if Path(pair[0]).name.startswith(sequence)]
        if not kept:
            prefixes = sorted({Path(p[0]).name.split('_')[0] for p in dataset.pairs})
            raise ValueError(f"no frames of sequence '{sequence}' in {dataset.name}; "
                             f"sequences: {', '.join(prefixes[:20])}")
        dataset = ds.SegmentationDataset(kept, dataset.lut, dataset.label_set,
                                         name=f'{dataset.name}/{sequence}')
    return dataset
