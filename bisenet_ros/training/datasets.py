"""Segmentation datasets: CamVid (SegNet layout), Cityscapes (official layout), generic folders.

Every dataset yields ``(image, label)`` with ``image`` an RGB ``(H, W, 3)`` uint8 array and
``label`` an ``(H, W)`` uint8 array of *train ids* ``0..num_classes-1`` with :data:`IGNORE`
(255) for unlabelled pixels. The mapping from the file's values to train ids is a 256-entry
lookup table; a file value that the table does not allow raises :class:`DatasetError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..labels import LabelSet, load_label_set

#: Train id of unlabelled pixels inside the training code, whatever the dataset's own void id.
IGNORE = 255
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')

#: Cityscapes labelIds -> the 19 trainIds (cityscapesScripts ``labels.py``); others -> 255.
CITYSCAPES_LABEL_TO_TRAIN: Dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}
CITYSCAPES_MAX_LABEL_ID = 33

PathLike = Union[str, Path]

#: Split name of the frames of ``dataset.holdout_sequences``; ``holdout:SEQ[,SEQ...]`` names
#: the sequences explicitly (see :func:`build_dataset`).
HOLDOUT = 'holdout'


class DatasetError(ValueError):
    """A dataset folder or file is unusable; the message names the path and the problem."""


def identity_lut(num_classes: int, ignore_value: Optional[int]) -> np.ndarray:
    """LUT for files storing train ids directly; ``ignore_value`` maps to :data:`IGNORE`.

    Returns ``(256,)`` int16: train id per file value, -1 for values that must not occur.
    """
    lut = np.full(256, -1, np.int16)
    lut[:num_classes] = np.arange(num_classes)
    if ignore_value is not None and 0 <= ignore_value <= 255:
        lut[ignore_value] = IGNORE
    return lut


def cityscapes_lut() -> np.ndarray:
    """LUT for Cityscapes ``*_labelIds.png``: ids 0..33 valid, 19 of them trained."""
    lut = np.full(256, -1, np.int16)
    lut[:CITYSCAPES_MAX_LABEL_ID + 1] = IGNORE
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    return lut


class SegmentationDataset:
    """Pairs of image and label files with a value lookup table.

    Args:
        pairs: ``(image_path, label_path)`` per sample, in a fixed order.
        lut: See :func:`identity_lut`.
        label_set: Classes (names, normalisation) of the train ids.
        cache: Keep decoded samples in memory after the first read (fast on small datasets).
    """

    def __init__(self, pairs: Sequence[Tuple[Path, Path]], lut: np.ndarray,
                 label_set: LabelSet, *, name: str = 'dataset', cache: bool = False) -> None:
        if not pairs:
            raise DatasetError(f'{name}: no samples')
        self.pairs = list(pairs)
        self.lut = lut
        self.label_set = label_set
        self.name = name
        self.cache = cache
        self._cache: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}

    @property
    def num_classes(self) -> int:
        return self.label_set.num_classes

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Sample ``index``: RGB ``(H, W, 3)`` uint8 and train ids ``(H, W)`` uint8."""
        if index in self._cache:
            return self._cache[index]
        image_path, label_path = self.pairs[index]
        image = read_rgb(image_path)
        raw = read_label(label_path)
        if raw.shape != image.shape[:2]:
            raise DatasetError(f'{label_path}: label is {raw.shape[1]}x{raw.shape[0]} but image '
                               f'{image_path} is {image.shape[1]}x{image.shape[0]} (WxH)')
        mapped = self.lut[raw]
        if (mapped < 0).any():
            bad = sorted(int(v) for v in np.unique(raw[mapped < 0]))[:10]
            allowed = [int(v) for v in np.flatnonzero(self.lut >= 0)]
            raise DatasetError(f'{label_path}: label values {bad} are not in the label set '
                               f'{self.label_set.name} (allowed values: {_ranges(allowed)})')
        label = mapped.astype(np.uint8)
        if self.cache:
            self._cache[index] = (image, label)
        return image, label

    def sequences(self) -> Dict[str, int]:
        """Frame count per sequence (:func:`frame_sequence` of each image), sorted by name."""
        counts: Dict[str, int] = {}
        for image_path, _ in self.pairs:
            seq = frame_sequence(image_path)
            counts[seq] = counts.get(seq, 0) + 1
        return dict(sorted(counts.items()))

    def subset(self, sequences: Iterable[str], *, keep: bool, name: str) -> 'SegmentationDataset':
        """The frames of ``sequences`` (``keep=True``) or all the others (``keep=False``), in
        order, as a new dataset (same lookup table, label set and cache setting).

        Raises:
            DatasetError: a sequence has no frame here (the sequences present are listed), or
                nothing is left.
        """
        wanted = set(sequences)
        present = self.sequences()
        missing = sorted(wanted - set(present))
        if missing:
            raise DatasetError(f'{self.name}: no frames of sequence(s) {missing}; its sequences '
                               f'are {_counts(present)}')
        pairs = [p for p in self.pairs if (frame_sequence(p[0]) in wanted) == keep]
        if not pairs:
            raise DatasetError(f'{name}: no frames left ({self.name} has only '
                               f'{_counts(present)})')
        return SegmentationDataset(pairs, self.lut, self.label_set, name=name, cache=self.cache)


def frame_sequence(path: PathLike) -> str:
    """Sequence of a frame: its file stem up to the first ``_`` (CamVid ``0006R0_f01230`` ->
    ``0006R0``; Cityscapes ``aachen_000000_000019_leftImg8bit`` -> ``aachen``)."""
    return Path(path).stem.split('_', 1)[0]


def concat(datasets: Sequence[SegmentationDataset], name: str) -> SegmentationDataset:
    """One dataset of the frames of ``datasets`` in order; they must share lookup table and
    label set (the same dataset kind)."""
    first = datasets[0]
    for other in datasets[1:]:
        same_lut = np.array_equal(other.lut, first.lut)
        if other.label_set.name != first.label_set.name or not same_lut:
            raise DatasetError(f'{name}: {other.name} and {first.name} have different label '
                               'mappings and cannot be trained together')
    pairs = [pair for d in datasets for pair in d.pairs]
    return SegmentationDataset(pairs, first.lut, first.label_set, name=name, cache=first.cache)


def _counts(counts: Dict[str, int]) -> str:
    return ', '.join(f'{k} ({v} frames)' for k, v in counts.items()) or 'none'


def _decode(path: PathLike, what: str, labels: bool) -> np.ndarray:
    """:func:`bisenet_ros.image_files.read_image`; :class:`DatasetError` naming the file."""
    from ..image_files import read_image
    try:
        return read_image(path, labels=labels, what=what)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as RGB ``(H, W, 3)`` uint8; :class:`DatasetError` if unreadable,
    undecodable or over :data:`~bisenet_ros.limits.DEFAULT_MAX_INPUT_PIXELS`."""
    return cv2.cvtColor(_decode(path, 'image', labels=False), cv2.COLOR_BGR2RGB)


def read_label(path: PathLike) -> np.ndarray:
    """Read a single-channel 8-bit label PNG as ``(H, W)`` uint8 (bounded like images)."""
    return _decode(path, 'label image', labels=True)


def pair_by_stem(image_dir: Path, label_dir: Path, *, name: str,
                 label_suffix: str = '.png') -> List[Tuple[Path, Path]]:
    """Match ``image_dir/<stem>.<img>`` with ``label_dir/<stem><label_suffix>``, sorted by stem.

    Raises:
        DatasetError: a folder is missing or empty, or a file has no partner (names listed).
    """
    for folder in (image_dir, label_dir):
        if not folder.is_dir():
            raise DatasetError(f'{name}: folder {folder} does not exist')
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    labels = {p.name[:-len(label_suffix)]: p for p in label_dir.iterdir()
              if p.name.endswith(label_suffix)}
    if not images:
        raise DatasetError(f'{name}: no images ({", ".join(IMAGE_SUFFIXES)}) in {image_dir}')
    _check_paired(set(images), set(labels), name, image_dir, label_dir)
    return [(images[s], labels[s]) for s in sorted(images)]


def _check_paired(images: set, labels: set, name: str, image_dir: Path, label_dir: Path) -> None:
    no_label = sorted(images - labels)
    no_image = sorted(labels - images)
    if no_label or no_image:
        parts = []
        if no_label:
            parts.append(f'{len(no_label)} images in {image_dir} have no label in {label_dir} '
                         f'(e.g. {no_label[:3]})')
        if no_image:
            parts.append(f'{len(no_image)} labels in {label_dir} have no image in {image_dir} '
                         f'(e.g. {no_image[:3]})')
        raise DatasetError(f'{name}: unpaired files: ' + '; '.join(parts))


def camvid(root: PathLike, split: str = 'train', *, cache: bool = False,
           label_set: Union[str, LabelSet] = 'camvid') -> SegmentationDataset:
    """CamVid in the SegNet layout: ``<root>/<split>/*.jpg|png`` + ``<root>/<split>annot/*.png``.

    Label PNG value = class index 0..10, 11 = void (mapped to :data:`IGNORE`).
    """
    labels = load_label_set(label_set)
    root = Path(root)
    pairs = pair_by_stem(root / split, root / f'{split}annot', name=f'CamVid {split} ({root})')
    lut = identity_lut(labels.num_classes, labels.ignore_index)
    return SegmentationDataset(pairs, lut, labels, name=f'camvid/{split}', cache=cache)


def cityscapes(root: PathLike, split: str = 'train', *, cache: bool = False,
               label_set: Union[str, LabelSet] = 'cityscapes') -> SegmentationDataset:
    """Cityscapes, official layout: ``leftImg8bit/<split>/<city>/<x>_leftImg8bit.png`` and
    ``gtFine/<split>/<city>/<x>_gtFine_labelIds.png``; labelIds -> 19 trainIds, rest 255."""
    labels = load_label_set(label_set)
    if labels.num_classes != 19:
        raise DatasetError(f'Cityscapes needs a 19-class label set, {labels.name} has '
                           f'{labels.num_classes}')
    root = Path(root)
    image_root, label_root = root / 'leftImg8bit' / split, root / 'gtFine' / split
    name = f'Cityscapes {split} ({root})'
    for folder in (image_root, label_root):
        if not folder.is_dir():
            raise DatasetError(f'{name}: folder {folder} does not exist')
    images = {p.name[:-len('_leftImg8bit.png')]: p
              for p in image_root.glob('*/*_leftImg8bit.png')}
    label_files = {p.name[:-len('_gtFine_labelIds.png')]: p
                   for p in label_root.glob('*/*_gtFine_labelIds.png')}
    if not images:
        raise DatasetError(f'{name}: no */*_leftImg8bit.png files in {image_root}')
    _check_paired(set(images), set(label_files), name, image_root, label_root)
    pairs = [(images[k], label_files[k]) for k in sorted(images)]
    return SegmentationDataset(pairs, cityscapes_lut(), labels, name=f'cityscapes/{split}',
                               cache=cache)


def image_folder(image_dir: PathLike, label_dir: PathLike, label_set: Union[str, LabelSet], *,
                 cache: bool = False, label_suffix: str = '.png') -> SegmentationDataset:
    """Generic folder pair: label PNG values are class ids of ``label_set``; its
    ``ignore_index`` (if <= 255) marks unlabelled pixels."""
    labels = load_label_set(label_set)
    pairs = pair_by_stem(Path(image_dir), Path(label_dir), name=f'folder {image_dir}',
                         label_suffix=label_suffix)
    lut = identity_lut(labels.num_classes, labels.ignore_index)
    return SegmentationDataset(pairs, lut, labels, name=f'folder/{Path(image_dir).name}',
                               cache=cache)


def train_splits(spec: Dict[str, object]) -> List[str]:
    """``dataset.train_split`` as a list: one split name or a list of them."""
    value = spec.get('train_split')
    value = 'train' if value is None else value
    names = [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(f'dataset.train_split must be a split name or a non-empty list of '
                           f'them, got {value!r}')
    return names


def holdout_sequences(spec: Dict[str, object], split: str = HOLDOUT) -> List[str]:
    """The held-out sequences: those named in ``split`` (``holdout:SEQ,SEQ``), else
    ``dataset.holdout_sequences``; :class:`DatasetError` when there are none."""
    named = split.split(':', 1)[1] if ':' in split else ''
    if named:
        return [s.strip() for s in named.split(',') if s.strip()]
    value = spec.get('holdout_sequences') or []
    if not value:
        raise DatasetError(f"split '{split}' needs held-out sequences: set "
                           "dataset.holdout_sequences (e.g. [0006R0]) or name them, e.g. "
                           f"'{HOLDOUT}:0006R0'")
    return [str(v) for v in value]  # type: ignore[attr-defined]


def build_dataset(spec: Dict[str, object], split: str, *, cache: bool = False
                  ) -> SegmentationDataset:
    """Dataset from the ``dataset`` section of a training config (see ``config/train/``).

    ``kind``: ``camvid`` | ``cityscapes`` (``root``) or ``folder`` (``<split>_images`` and
    ``<split>_labels`` folders); ``label_set``: name or YAML path. ``split`` is a split name,
    or ``holdout`` (the frames of ``dataset.holdout_sequences`` in the training splits
    ``dataset.train_split``), or ``holdout:SEQ[,SEQ...]`` (those sequences, whatever the config
    holds out).
    """
    if split == HOLDOUT or split.startswith(HOLDOUT + ':'):
        sequences = holdout_sequences(spec, split)
        source = _splits(spec, train_splits(spec), cache)
        return source.subset(sequences, keep=True, name=f'{source.name} {HOLDOUT} '
                             f'{",".join(sequences)}')
    return _split(spec, split, cache)


def build_train_dataset(spec: Dict[str, object], *, cache: bool = False) -> SegmentationDataset:
    """The training frames: the splits of ``dataset.train_split`` together, without the frames
    of ``dataset.holdout_sequences`` (each must occur in them)."""
    source = _splits(spec, train_splits(spec), cache)
    held = list(spec.get('holdout_sequences') or [])  # type: ignore[call-overload]
    if not held:
        return source
    return source.subset(held, keep=False, name=f'{source.name} without {",".join(held)}')


def _splits(spec: Dict[str, object], names: List[str], cache: bool) -> SegmentationDataset:
    parts = [_split(spec, name, cache) for name in names]
    return parts[0] if len(parts) == 1 else concat(parts, '+'.join(p.name for p in parts))


def _split(spec: Dict[str, object], split: str, cache: bool) -> SegmentationDataset:
    kind = spec.get('kind')
    label_set = spec.get('label_set') or ('cityscapes' if kind == 'cityscapes' else 'camvid')
    if kind in ('camvid', 'cityscapes'):
        if not spec.get('root'):
            raise DatasetError(f'dataset.root is required for dataset.kind={kind}')
        builder = camvid if kind == 'camvid' else cityscapes
        return builder(str(spec['root']), split, cache=cache, label_set=label_set)  # type: ignore
    if kind == 'folder':
        images, labels = spec.get(f'{split}_images'), spec.get(f'{split}_labels')
        if not images or not labels:
            raise DatasetError(f'dataset.kind=folder needs dataset.{split}_images and '
                               f'dataset.{split}_labels')
        return image_folder(str(images), str(labels), label_set, cache=cache)  # type: ignore
    raise DatasetError(f"dataset.kind must be 'camvid', 'cityscapes' or 'folder', got {kind!r}")


def _ranges(values: List[int]) -> str:
    """``[0,1,2,5,255]`` -> ``'0..2, 5, 255'``."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f'{start}..{v}')
            start = None
    return ', '.join(out)


# Whole datasets as sources of frames (``bisenet make-bag``, the demo) -------------------

#: Dataset kinds :func:`open_dataset` opens (``bisenet make-bag --dataset``).
SOURCE_KINDS = ('camvid', 'cityscapes', 'folder', 'demo')


def demo_frames_dir() -> Path:
    """The packaged demo frames (15 CamVid val frames, see ``data/demo/NOTICE.md``)."""
    return Path(__file__).resolve().parent.parent / 'data' / 'demo'


def demo_dataset() -> SegmentationDataset:
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
    return SegmentationDataset(pairs, identity_lut(labels.num_classes, labels.ignore_index),
                               labels, name='demo')


def open_dataset(kind: str, root: Optional[str] = None, split: str = 'val',
                 sequence: Optional[str] = None, images: Optional[str] = None,
                 labels: Optional[str] = None,
                 label_set: Union[str, LabelSet, None] = None) -> SegmentationDataset:
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
        builder = camvid if kind == 'camvid' else cityscapes
        dataset = builder(root, split, label_set=label_set or kind)
    elif kind == 'folder':
        if not images or not labels:
            raise ValueError('--dataset folder needs --images DIR and --labels DIR')
        dataset = image_folder(images, labels, label_set or 'camvid')
    else:
        raise ValueError(f"dataset kind must be one of {', '.join(SOURCE_KINDS)}, got '{kind}'")
    if sequence:
        kept = [pair for pair in dataset.pairs if Path(pair[0]).name.startswith(sequence)]
        if not kept:
            prefixes = sorted({Path(p[0]).name.split('_')[0] for p in dataset.pairs})
            raise ValueError(f"no frames of sequence '{sequence}' in {dataset.name}; "
                             f"sequences: {', '.join(prefixes[:20])}")
        dataset = SegmentationDataset(kept, dataset.lut, dataset.label_set,
                                      name=f'{dataset.name}/{sequence}')
    return dataset
