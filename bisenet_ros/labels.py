"""Label sets: class names, RGB palette, ignore id and input normalisation, loaded from YAML.

A label-set YAML (see ``config/labels/*.yaml``)::

    name: camvid
    ignore_index: 11             # label value that means "not labelled" (0..255)
    mean: [0.41, 0.42, 0.43]     # RGB, images scaled to [0, 1]
    std: [0.31, 0.31, 0.31]
    classes:
      - {name: sky, color: [128, 128, 128]}   # RGB 0..255

Built-in sets are referred to by name (``'cityscapes'``, ``'camvid'``); anything else is a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

import numpy as np

from .limits import shorten
from .resources import find_config_file

BUILTIN_LABEL_SETS = ('cityscapes', 'camvid')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LabelSetError(ValueError):
    """A label set file or dict is malformed; the message names the source and the field."""


#: Most classes a label set may have: class ids and the ignore id fit a 16-bit mask.
MAX_CLASSES = 65535


@dataclass(frozen=True)
class LabelSet:
    """Classes of a segmentation model.

    Attributes:
        name: Short identifier.
        class_names: One name per class id ``0..num_classes-1``.
        colors: RGB uint8 colour per class, same order.
        ignore_index: Label value that marks unlabelled pixels (may equal ``num_classes``).
        mean, std: RGB normalisation of images scaled to [0, 1].
    """

    name: str
    class_names: Tuple[str, ...]
    colors: Tuple[Tuple[int, int, int], ...]
    ignore_index: int = 255
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    source: str = field(default='<dict>', compare=False)

    def __post_init__(self) -> None:
        where = f'label set {self.source}'
        if not self.class_names:
            raise LabelSetError(f'{where}: no classes')
        if len(self.class_names) > MAX_CLASSES:
            raise LabelSetError(f'{where}: {len(self.class_names)} classes, at most '
                                f'{MAX_CLASSES} (ids must fit 16-bit masks)')
        if len(self.colors) != len(self.class_names):
            raise LabelSetError(f'{where}: {len(self.class_names)} class names but '
                                f'{len(self.colors)} colours')
        for i, color in enumerate(self.colors):
            if len(color) != 3 or not all(0 <= int(c) <= 255 for c in color):
                raise LabelSetError(f'{where}: colour of class {i} must be 3 ints in 0..255, '
                                    f'got {list(color)}')
        if not 0 <= self.ignore_index <= 65535:
            raise LabelSetError(f'{where}: ignore_index must be in 0..65535, '
                                f'got {self.ignore_index}')
        for key, values in (('mean', self.mean), ('std', self.std)):
            if len(values) != 3:
                raise LabelSetError(f'{where}: {key} needs 3 values (RGB), got {list(values)}')
        if not all(math.isfinite(float(v)) for v in (*self.mean, *self.std)):
            raise LabelSetError(f'{where}: mean and std must be finite, got mean '
                                f'{list(self.mean)}, std {list(self.std)}')
        if any(s <= 0 for s in self.std):
            raise LabelSetError(f'{where}: std must be positive, got {list(self.std)}')

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def palette(self) -> np.ndarray:
        """Colour lookup ``(max(256, C), 3)`` uint8 RGB; ids without a class are black."""
        table = np.zeros((max(256, self.num_classes), 3), np.uint8)
        table[:self.num_classes] = np.asarray(self.colors, np.uint8)
        return table

    def to_dict(self) -> Dict[str, Any]:
        """Plain-data form, as stored in checkpoints and YAML."""
        return {
            'name': self.name,
            'ignore_index': int(self.ignore_index),
            'mean': [float(v) for v in self.mean],
            'std': [float(v) for v in self.std],
            'classes': [{'name': n, 'color': [int(c) for c in col]}
                        for n, col in zip(self.class_names, self.colors)],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = '<dict>') -> 'LabelSet':
        """Build from the YAML/checkpoint form; raises :class:`LabelSetError` naming ``source``."""
        if not isinstance(data, dict):
            raise LabelSetError(f'label set {source}: expected a mapping, got '
                                f'{type(data).__name__}')
        classes = data.get('classes')
        if not isinstance(classes, list):
            raise LabelSetError(f"label set {source}: 'classes' must be a list of "
                                '{name, color} entries')
        names: List[str] = []
        colors: List[Tuple[int, int, int]] = []
        for i, entry in enumerate(classes):
            if not isinstance(entry, dict) or 'name' not in entry or 'color' not in entry:
                raise LabelSetError(f'label set {source}: class {i} must have name and color, '
                                    f'got {entry!r}')
            names.append(str(entry['name']))
            colors.append(tuple(int(c) for c in entry['color']))  # type: ignore[misc]
        try:
            return cls(name=str(data.get('name', Path(source).stem)),
                       class_names=tuple(names), colors=tuple(colors),
                       ignore_index=int(data.get('ignore_index', 255)),
                       mean=tuple(float(v) for v in data.get('mean', IMAGENET_MEAN)),
                       std=tuple(float(v) for v in data.get('std', IMAGENET_STD)),
                       source=source)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, LabelSetError):
                raise
            raise LabelSetError(f'label set {source}: {exc}') from exc

    @classmethod
    def from_yaml(cls, path: Union[str, Path]) -> 'LabelSet':
        """Load a label-set YAML file (:func:`bisenet_ros.user_files.load_yaml`: a regular
        file, read within its size and time bounds)."""
        from .limits import LimitError
        from .user_files import load_yaml
        try:
            data = load_yaml(path, 'label set')  # bounded in bytes, nodes and time
        except LimitError as exc:
            raise LabelSetError(str(exc)) from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def generic(cls, num_classes: int, ignore_index: int = 255) -> 'LabelSet':
        """Anonymous classes ``class_0..`` with a fixed pseudo-random palette."""
        rng = np.random.default_rng(0)
        colors = rng.integers(0, 256, size=(num_classes, 3))
        return cls(name=f'generic{num_classes}',
                   class_names=tuple(f'class_{i}' for i in range(num_classes)),
                   colors=tuple(tuple(int(v) for v in c) for c in colors),  # type: ignore
                   ignore_index=ignore_index)


def load_label_set(name_or_path: Union[str, Path, 'LabelSet']) -> LabelSet:
    """A built-in label set by name (``cityscapes``, ``camvid``) or a YAML file by path."""
    if isinstance(name_or_path, LabelSet):
        return name_or_path
    text = str(name_or_path)
    if text in BUILTIN_LABEL_SETS:
        return LabelSet.from_yaml(find_config_file(f'labels/{text}.yaml'))
    from .user_files import check_file, MissingFileError, UserFileError
    try:
        check_file(text, 'label set')
    except MissingFileError:
        raise LabelSetError(f"label set '{shorten(text)}' is neither a built-in "
                            f'({", ".join(BUILTIN_LABEL_SETS)}) nor an existing YAML file') \
            from None
    except UserFileError as exc:  # a folder, FIFO, device, unreadable, NUL byte, too long, ...
        raise LabelSetError(str(exc)) from None
    return LabelSet.from_yaml(text)


def colorize(labels: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """Class ids ``(..., H, W)`` integer -> RGB ``(..., H, W, 3)`` uint8 via the palette."""
    return np.take(label_set.palette(), np.asarray(labels, np.intp), axis=0, mode='clip')
