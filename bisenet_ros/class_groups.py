"""Class groups: model classes merged into a few navigation classes, with confidence thresholds.

A groups YAML (see ``config/groups/camvid_nav2.yaml``) names the model's classes by their label
set names::

    name: camvid_nav2
    unassigned: error          # a model class in no group: 'unknown' (default) or 'error'
    default_threshold: 0.0     # for classes with no threshold of their own or of their group
    unknown: {name: unknown, color: [0, 0, 0]}   # optional; id is always 255
    groups:                    # group id = position in this list (0, 1, ...)
      - name: traversable
        color: [128, 64, 128]  # RGB 0..255
        classes: [road, pavement]
        threshold: 0.6         # optional, in [0, 1]: this group's classes below it -> unknown
      - name: obstacle
        color: [220, 20, 60]
        classes: [car, pedestrian, pole]
    class_thresholds:          # optional, in [0, 1]; wins over the group's and the default
      pole: 0.4

The group mask holds one uint8 id per pixel: the group of the pixel's class, or
:data:`UNKNOWN_ID` (255) where the class is in no group (``unassigned: unknown``), where the
id is not a class of the label set (its ignore id, e.g. CamVid's 11, set by the node's
``confidence_threshold``), or where the pixel's confidence (top-class softmax probability) is
below its class's threshold. 255 stays the same whatever groups a file has, and
is the "unlabelled" value of the project's bags, so a group mask can be scored like a label map.
The effective threshold of a class is its ``class_thresholds`` entry, else its group's
``threshold``, else ``default_threshold`` (0 = keep every pixel).

Built-in group files are referred to by name (``'camvid_nav2'``); anything else is a path.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .labels import LabelSet
from .resources import find_config_file

BUILTIN_GROUPS = ('camvid_nav2',)
#: Group id of pixels with no group: unassigned or ignored classes, and pixels below their
#: class's confidence threshold.
UNKNOWN_ID = 255
#: Most groups a file may define: ids 0..254 (255 is :data:`UNKNOWN_ID`).
MAX_GROUPS = UNKNOWN_ID
UNASSIGNED_CHOICES = ('unknown', 'error')
_TOP_KEYS = {'name', 'groups', 'class_thresholds', 'default_threshold', 'unassigned', 'unknown'}
_GROUP_KEYS = {'name', 'color', 'classes', 'threshold'}

Color = Tuple[int, int, int]


class ClassGroupsError(ValueError):
    """A groups file or dict is malformed; the message names the source and the field."""


@dataclass(frozen=True)
class Group:
    """One group: its id is its position in :attr:`ClassGroups.groups`.

    Attributes:
        name: Group name, published in the group ``LabelInfo``.
        color: RGB colour 0..255.
        classes: Names of the model classes it contains.
        threshold: Confidence threshold in [0, 1] for its classes, or ``None`` (the default).
    """

    name: str
    color: Color
    classes: Tuple[str, ...]
    threshold: Optional[float] = None


class ClassGroups:
    """Model classes -> group ids, with per-class confidence thresholds (see the module doc).

    Args:
        groups: The groups, id = position (at most :data:`MAX_GROUPS`).
        label_set: The model's classes; every class name must be one of its names.
        class_thresholds: Threshold in [0, 1] per class name (wins over the group's).
        default_threshold: Threshold in [0, 1] of classes with none of their own or group's.
        unassigned: ``'unknown'``: classes in no group map to :data:`UNKNOWN_ID`;
            ``'error'``: every class must be in a group.
        unknown_name, unknown_color: How :data:`UNKNOWN_ID` appears in ``LabelInfo`` and
            colour masks.
        name, source: For messages and metadata.

    Raises:
        ClassGroupsError: naming ``source`` and what is wrong.
    """

    def __init__(self, groups: Sequence[Group], label_set: LabelSet,
                 class_thresholds: Optional[Mapping[str, float]] = None,
                 default_threshold: float = 0.0, unassigned: str = 'unknown',
                 unknown_name: str = 'unknown', unknown_color: Color = (0, 0, 0),
                 name: str = 'groups', source: str = '<dict>') -> None:
        self.where = f'class groups {source}'
        self.name = name
        self.label_set = label_set
        self.groups: Tuple[Group, ...] = tuple(groups)
        self.unassigned = unassigned
        self.unknown_name = unknown_name
        self.unknown_color = _color(unknown_color, f'{self.where}: unknown colour')
        self.default_threshold = _threshold(default_threshold,
                                            f'{self.where}: default_threshold')
        self._check_groups()
        index = {n: i for i, n in enumerate(label_set.class_names)}
        class_to_group = np.full(label_set.num_classes, UNKNOWN_ID, np.uint8)
        thresholds = np.full(label_set.num_classes, self.default_threshold, np.float32)
        owner: Dict[str, str] = {}
        for gid, group in enumerate(self.groups):
            for cls in group.classes:
                self._check_class(cls, index, f"group '{group.name}'")
                if cls in owner:
                    raise ClassGroupsError(f"{self.where}: class '{cls}' is in groups "
                                           f"'{owner[cls]}' and '{group.name}'; a class "
                                           'belongs to one group')
                owner[cls] = group.name
                class_to_group[index[cls]] = gid
                if group.threshold is not None:
                    thresholds[index[cls]] = group.threshold
        self._own_thresholds: Dict[str, float] = {}
        for cls, value in (class_thresholds or {}).items():
            self._check_class(cls, index, 'class_thresholds')
            value = _threshold(value, f"{self.where}: threshold of '{cls}'")
            thresholds[index[cls]] = self._own_thresholds[cls] = value
        missing = [n for n in label_set.class_names if n not in owner]
        if unassigned not in UNASSIGNED_CHOICES:
            raise ClassGroupsError(f"{self.where}: unassigned must be one of "
                                   f"{', '.join(UNASSIGNED_CHOICES)}, got {unassigned!r}")
        if missing and unassigned == 'error':
            raise ClassGroupsError(f'{self.where}: classes {missing} are in no group (put them '
                                   "in one, or set 'unassigned: unknown' to map them to "
                                   f'{UNKNOWN_ID})')
        self.class_to_group = class_to_group
        self.class_thresholds = thresholds
        self.class_thresholds.setflags(write=False)
        self.class_to_group.setflags(write=False)
        # Lookup tables indexed by label value: every uint8 (or uint16) id has an entry; ids
        # outside the label set (the ignore id, unless a class has it) map to unknown.
        size = 256 if label_set.num_classes <= 256 else 65536
        self._group_lut = np.full(size, UNKNOWN_ID, np.uint8)
        self._group_lut[:label_set.num_classes] = class_to_group
        self._threshold_lut = np.zeros(size, np.float32)
        self._threshold_lut[:label_set.num_classes] = thresholds
        used = thresholds[class_to_group != UNKNOWN_ID]
        self._used_thresholds = used
        #: The one threshold of every grouped class (of every id), when they share one: a
        #: scalar compare instead of a lookup.
        self._uniform = _common(used)
        self._uniform_all = _common(self._threshold_lut) if size == 256 else None

    def _check_groups(self) -> None:
        if not self.groups:
            raise ClassGroupsError(f'{self.where}: no groups')
        if len(self.groups) > MAX_GROUPS:
            raise ClassGroupsError(f'{self.where}: {len(self.groups)} groups, at most '
                                   f'{MAX_GROUPS} (ids 0..{MAX_GROUPS - 1}, {UNKNOWN_ID} is '
                                   'unknown)')
        seen = {self.unknown_name}
        for gid, group in enumerate(self.groups):
            what = f"{self.where}: group {gid} ('{group.name}')"
            if not group.name or group.name in seen:
                raise ClassGroupsError(f'{what}: names must be non-empty and unique (the '
                                       f"unknown group is '{self.unknown_name}')")
            seen.add(group.name)
            _color(group.color, f'{what}: color')
            if not group.classes:
                raise ClassGroupsError(f'{what}: no classes')
            if group.threshold is not None:
                _threshold(group.threshold, f'{what}: threshold')

    def _check_class(self, cls: str, index: Mapping[str, int], where: str) -> None:
        if cls not in index:
            raise ClassGroupsError(f"{self.where}: {where} names class '{cls}', which label "
                                   f'set {self.label_set.name} does not have; its classes: '
                                   f"{', '.join(self.label_set.class_names)}")

    # -- what the node publishes -----------------------------------------------------------
    @property
    def num_groups(self) -> int:
        return len(self.groups)

    @property
    def needs_confidence(self) -> bool:
        """Whether a grouped class has a threshold above 0 (:meth:`group_ids` then needs the
        confidence map)."""
        return bool((self._used_thresholds > 0).any())

    @property
    def min_threshold(self) -> float:
        """Lowest threshold of a grouped class: every pixel of a group is at least this
        confident (the group ``LabelInfo``'s ``threshold``)."""
        used = self._used_thresholds
        return float(used.min()) if used.size else 0.0

    def class_map(self) -> List[Tuple[int, str]]:
        """``(id, name)`` of every group, then ``(255, unknown name)``: the group
        ``LabelInfo``'s ``class_map``."""
        return [(i, g.name) for i, g in enumerate(self.groups)] + \
            [(UNKNOWN_ID, self.unknown_name)]

    def palette(self) -> np.ndarray:
        """Colour lookup ``(256, 3)`` uint8 RGB of group ids (255: the unknown colour; ids
        without a group are black)."""
        table = np.zeros((256, 3), np.uint8)
        table[:self.num_groups] = np.asarray([g.color for g in self.groups], np.uint8)
        table[UNKNOWN_ID] = self.unknown_color
        return table

    def metadata(self) -> Dict[str, Any]:
        """JSON-ready description of the group mask (as the node's ``class_info``)."""
        names = self.label_set.class_names
        return {'groups': self.name, 'label_set': self.label_set.name,
                'num_groups': self.num_groups,
                'group_names': [g.name for g in self.groups],
                'colors': [list(map(int, g.color)) for g in self.groups],
                'unknown_id': UNKNOWN_ID, 'unknown_name': self.unknown_name,
                'unknown_color': list(map(int, self.unknown_color)),
                'class_to_group': {n: int(g) for n, g in zip(names, self.class_to_group)},
                'class_thresholds': {n: float(t) for n, t in zip(names, self.class_thresholds)},
                'mask_encoding': 'mono8'}

    # -- the mapping ------------------------------------------------------------------------
    def group_ids(self, labels: np.ndarray,
                  confidence: Optional[np.ndarray] = None) -> np.ndarray:
        """Group id per pixel: ``(H, W)`` uint8, :data:`UNKNOWN_ID` where no group applies.

        Args:
            labels: ``(H, W)`` uint8 or uint16 class ids of the model.
            confidence: ``(H, W)`` float32 top-class probability in [0, 1], needed when a
                grouped class has a threshold above 0 (:attr:`needs_confidence`); pixels whose
                confidence is below their class's threshold become :data:`UNKNOWN_ID`.

        Raises:
            ValueError: wrong dtype, rank or shape, or thresholds set and no confidence.
        """
        _check_labels(labels, 'group_ids')
        import cv2
        if labels.dtype == np.uint8:
            groups = cv2.LUT(labels, self._group_lut[:256])
        else:
            groups = np.take(self._group_lut, labels, mode='clip')
        if not self.needs_confidence:
            return groups
        below = self._below(labels, confidence, self._uniform, 'group_ids')
        # below is 0 or 255 per pixel, and 255 | id = 255 = UNKNOWN_ID.
        return cv2.bitwise_or(groups, below, dst=groups)

    def below_threshold(self, labels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8: 255 where a pixel's confidence is below its class's threshold
        (grouped or not), else 0; e.g. ``labels[mask > 0] = ignore_index`` applies the
        per-class thresholds to the class mask. Same inputs as :meth:`group_ids`."""
        _check_labels(labels, 'below_threshold')
        return self._below(labels, confidence, self._uniform_all, 'below_threshold')

    def _below(self, labels: np.ndarray, confidence: Optional[np.ndarray],
               uniform: Optional[float], what: str) -> np.ndarray:
        if confidence is None:
            raise ValueError(f'{what}: {self.where} has confidence thresholds (up to '
                             f'{float(self.class_thresholds.max()):g}), so it needs the '
                             'confidence map; got None')
        if not isinstance(confidence, np.ndarray) or confidence.shape != labels.shape \
                or confidence.dtype.kind != 'f':
            raise ValueError(f'{what}: confidence must be a float array of the labels\' '
                             f'shape {labels.shape}, got {_describe(confidence)}')
        import cv2
        confidence = confidence.astype(np.float32, copy=False)
        if uniform is not None:
            return cv2.compare(confidence, float(uniform), cv2.CMP_LT)
        if labels.dtype == np.uint8:
            limits = cv2.LUT(labels, self._threshold_lut[:256])
        else:
            limits = np.take(self._threshold_lut, labels, mode='clip')
        return cv2.compare(confidence, limits, cv2.CMP_LT)

    # -- files ------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain-data form, as read by :meth:`from_dict`."""
        out: Dict[str, Any] = {
            'name': self.name, 'unassigned': self.unassigned,
            'default_threshold': self.default_threshold,
            'unknown': {'name': self.unknown_name, 'color': list(self.unknown_color)},
            'groups': [{'name': g.name, 'color': list(g.color), 'classes': list(g.classes),
                        **({} if g.threshold is None else {'threshold': g.threshold})}
                       for g in self.groups]}
        if self._own_thresholds:
            out['class_thresholds'] = dict(self._own_thresholds)
        return out

    @classmethod
    def from_dict(cls, data: Any, label_set: LabelSet, source: str = '<dict>'
                  ) -> 'ClassGroups':
        """Build from the YAML form; raises :class:`ClassGroupsError` naming ``source``."""
        where = f'class groups {source}'
        _mapping(data, where, _TOP_KEYS)
        entries = data.get('groups')
        if not isinstance(entries, list) or not entries:
            raise ClassGroupsError(f"{where}: 'groups' must be a non-empty list of "
                                   '{name, color, classes[, threshold]} entries')
        groups = []
        for gid, entry in enumerate(entries):
            what = f'{where}: group {gid}'
            _mapping(entry, what, _GROUP_KEYS)
            missing = [k for k in ('name', 'color', 'classes') if k not in entry]
            if missing:
                raise ClassGroupsError(f'{what}: missing {missing} (got {entry!r})')
            classes = entry['classes']
            if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
                raise ClassGroupsError(f'{what}: classes must be a list of class names, got '
                                       f'{classes!r}')
            threshold = entry.get('threshold')
            groups.append(Group(
                name=str(entry['name']), classes=tuple(classes),
                color=_color(entry['color'], f'{what}: color'),
                threshold=None if threshold is None else _threshold(threshold,
                                                                    f'{what}: threshold')))
        thresholds = data.get('class_thresholds') or {}
        if not isinstance(thresholds, dict):
            raise ClassGroupsError(f"{where}: 'class_thresholds' must map class names to "
                                   f'thresholds, got {thresholds!r}')
        unknown = data.get('unknown') or {}
        _mapping(unknown, f'{where}: unknown', {'name', 'color'})
        return cls(groups, label_set, class_thresholds={str(k): v for k, v in
                                                        thresholds.items()},
                   default_threshold=data.get('default_threshold', 0.0),
                   unassigned=str(data.get('unassigned', 'unknown')),
                   unknown_name=str(unknown.get('name', 'unknown')),
                   unknown_color=unknown.get('color', (0, 0, 0)),
                   name=str(data.get('name', Path(source).stem)), source=source)

    @classmethod
    def from_yaml(cls, path: Union[str, Path], label_set: LabelSet) -> 'ClassGroups':
        """Load a groups YAML file (bounded in size, time and nodes, see
        :func:`bisenet_ros.user_files.load_yaml`)."""
        from .limits import LimitError
        from .user_files import load_yaml
        try:
            data = load_yaml(path, 'class groups')
        except LimitError as exc:
            raise ClassGroupsError(str(exc)) from None
        return cls.from_dict(data, label_set, source=str(path))


def load_class_groups(name_or_path: Union[str, Path], label_set: LabelSet) -> ClassGroups:
    """A built-in groups file by name (``camvid_nav2``) or a YAML file by path, for the
    classes of ``label_set``."""
    text = str(name_or_path)
    if text in BUILTIN_GROUPS:
        return ClassGroups.from_yaml(find_config_file(f'groups/{text}.yaml'), label_set)
    if not Path(text).is_file():
        raise ClassGroupsError(f"class groups '{text}' is neither a built-in "
                               f'({", ".join(BUILTIN_GROUPS)}) nor an existing YAML file')
    return ClassGroups.from_yaml(text, label_set)


def _mapping(data: Any, where: str, keys: set) -> None:
    if not isinstance(data, dict):
        raise ClassGroupsError(f'{where}: expected a mapping, got {type(data).__name__}')
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ClassGroupsError(f'{where}: unknown keys {unknown}; expected some of '
                               f'{sorted(keys)}')


def _threshold(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ClassGroupsError(f'{what} must be a number in [0, 1], got {value!r}')
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ClassGroupsError(f'{what} must be in [0, 1], got {value!r}')
    return number


def _color(value: Any, what: str) -> Color:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255
            for c in value):
        raise ClassGroupsError(f'{what} must be 3 ints in 0..255 (RGB), got {value!r}')
    return (int(value[0]), int(value[1]), int(value[2]))


def _common(values: np.ndarray) -> Optional[float]:
    return float(values[0]) if values.size and bool((values == values[0]).all()) else None


def _check_labels(labels: Any, what: str) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim != 2 \
            or labels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{what}: labels must be a (H, W) uint8 or uint16 array, got '
                         f'{_describe(labels)}')


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f'{value.dtype} {value.shape}'
    return type(value).__name__
