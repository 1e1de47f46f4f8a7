"""Class groups: YAML loading and validation, the group mask with per-class thresholds, and the
shipped CamVid example against the Nav2 costmap example."""

import numpy as np
import pytest

from bisenet_ros.class_groups import (ClassGroups, ClassGroupsError, Group, load_class_groups,
                                      UNKNOWN_ID)
from bisenet_ros.labels import LabelSet, load_label_set
from bisenet_ros.user_files import load_yaml
from bisenet_ros.resources import find_config_file

# Four classes, ignore id 4; groups: floor (0) = {floor}, thing (1) = {chair, table}.
HOME = LabelSet(name='home', class_names=('floor', 'wall', 'chair', 'table'),
                colors=((1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4)), ignore_index=4)
HOME_YAML = """\
name: home_groups
default_threshold: 0.1
groups:
  - {name: floor, color: [0, 255, 0], classes: [floor], threshold: 0.5}
  - {name: thing, color: [255, 0, 0], classes: [chair, table]}
class_thresholds:
  table: 0.7
"""


@pytest.fixture
def home(tmp_path):
    path = tmp_path / 'home.yaml'
    path.write_text(HOME_YAML)
    return load_class_groups(path, HOME)


def _reference(groups, labels, confidence):
    """Group ids computed pixel by pixel from the documented rules."""
    names = groups.label_set.class_names
    out = np.empty(labels.shape, np.uint8)
    for (r, c), label in np.ndenumerate(labels):
        out[r, c] = UNKNOWN_ID
        if label < len(names) and label != groups.label_set.ignore_index:
            gid = int(groups.class_to_group[label])
            if confidence is None or confidence[r, c] >= groups.class_thresholds[label]:
                out[r, c] = gid
    return out


def test_thresholds_follow_class_then_group_then_default(home):
    # floor: its group's 0.5; wall: in no group, the default 0.1; chair: the default (its
    # group has none); table: its own 0.7.
    np.testing.assert_allclose(home.class_thresholds, [0.5, 0.1, 0.1, 0.7])
    assert home.class_to_group.tolist() == [0, UNKNOWN_ID, 1, 1]
    assert home.needs_confidence and home.min_threshold == pytest.approx(0.1)
    assert home.class_map() == [(0, 'floor'), (1, 'thing'), (255, 'unknown')]


def test_group_mask_by_hand(home):
    labels = np.array([[0, 0, 1, 2],
                       [3, 3, 4, 200]], np.uint8)
    confidence = np.array([[0.5, 0.49, 0.9, 0.1],
                           [0.7, 0.69, 1.0, 1.0]], np.float32)
    # floor at exactly its threshold stays, just below goes; wall is in no group; chair at
    # the default 0.1 stays; table 0.7 stays, 0.69 goes; the ignore id 4 and the id 200
    # (outside the label set) are unknown whatever their confidence.
    expected = np.array([[0, 255, 255, 1],
                         [1, 255, 255, 255]], np.uint8)
    out = home.group_ids(labels, confidence)
    assert out.dtype == np.uint8 and out.shape == labels.shape
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(home.group_ids(labels.astype(np.uint16), confidence), expected)
    assert labels[0, 0] == 0 and confidence[0, 1] == np.float32(0.49)  # inputs untouched


def test_below_threshold_for_the_class_mask(home):
    """Every class's threshold counts, in a group or not (wall: the default 0.1)."""
    labels = np.array([[0, 0, 1, 1, 3, 4]], np.uint8)
    confidence = np.array([[0.5, 0.4, 0.1, 0.05, 0.6, 0.0]], np.float32)
    expected = [[0, 255, 0, 255, 255, 0]]
    for dtype in (np.uint8, np.uint16):
        mask = home.below_threshold(labels.astype(dtype), confidence)
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match='below_threshold: .* needs the confidence map'):
        home.below_threshold(labels, None)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
@pytest.mark.parametrize('class_thresholds', [{}, {'table': 0.7}])
def test_group_mask_matches_reference_on_random_maps(dtype, class_thresholds):
    """Both the one-threshold path (a scalar compare) and the per-class lookup."""
    groups = ClassGroups([Group('floor', (0, 255, 0), ('floor',), 0.4),
                          Group('thing', (255, 0, 0), ('chair', 'table'), 0.4)], HOME,
                         class_thresholds=class_thresholds)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, (37, 53)).astype(dtype)
    confidence = rng.random((37, 53), dtype=np.float32)
    np.testing.assert_array_equal(groups.group_ids(labels, confidence),
                                  _reference(groups, labels, confidence))


def test_no_thresholds_needs_no_confidence():
    groups = ClassGroups([Group('all', (9, 9, 9), ('floor', 'wall', 'chair', 'table'))], HOME,
                         unassigned='error')
    assert not groups.needs_confidence and groups.min_threshold == 0.0
    labels = np.array([[0, 1, 2, 3, 4, 5]], np.uint8)
    np.testing.assert_array_equal(groups.group_ids(labels), [[0, 0, 0, 0, 255, 255]])


def test_threshold_of_an_unassigned_class_needs_no_confidence():
    groups = ClassGroups([Group('floor', (0, 255, 0), ('floor',))], HOME,
                         class_thresholds={'wall': 0.9})
    assert not groups.needs_confidence
    np.testing.assert_array_equal(groups.group_ids(np.array([[0, 1]], np.uint8)), [[0, 255]])


def test_more_than_256_classes_use_uint16_ids():
    many = LabelSet.generic(300)
    groups = ClassGroups([Group('low', (1, 2, 3), ('class_3',)),
                          Group('high', (4, 5, 6), ('class_299', 'class_256'), 0.5)], many)
    labels = np.array([[3, 299, 256, 255, 256]], np.uint16)
    confidence = np.array([[0.0, 0.6, 0.5, 1.0, 0.4]], np.float32)
    np.testing.assert_array_equal(groups.group_ids(labels, confidence), [[0, 1, 1, 255, 255]])


def test_bad_arrays_are_clear_errors(home):
    labels = np.zeros((4, 5), np.uint8)
    with pytest.raises(ValueError, match=r'needs the confidence map; got None'):
        home.group_ids(labels)
    with pytest.raises(ValueError, match=r'labels must be a \(H, W\) uint8 or uint16.*int32'):
        home.group_ids(labels.astype(np.int32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r'labels must be.*\(4, 5, 1\)'):
        home.group_ids(labels[:, :, None], np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"labels' shape \(4, 5\), got float32 \(5, 4\)"):
        home.group_ids(labels, np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r'confidence must be a float.*uint8'):
        home.group_ids(labels, np.zeros((4, 5), np.uint8))
    out = home.group_ids(labels, np.ones((4, 5), np.float64))  # float64 is converted
    assert (out == 0).all()


def test_palette_metadata_and_round_trip(home):
    palette = home.palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [0, 255, 0] and palette[1].tolist() == [255, 0, 0]
    assert palette[UNKNOWN_ID].tolist() == [0, 0, 0] and palette[2].tolist() == [0, 0, 0]
    meta = home.metadata()
    assert meta['group_names'] == ['floor', 'thing'] and meta['unknown_id'] == 255
    assert meta['class_to_group'] == {'floor': 0, 'wall': 255, 'chair': 1, 'table': 1}
    assert meta['class_thresholds']['table'] == pytest.approx(0.7)
    again = ClassGroups.from_dict(home.to_dict(), HOME, 'again')
    assert again.to_dict() == home.to_dict()
    np.testing.assert_array_equal(again.class_thresholds, home.class_thresholds)
    np.testing.assert_array_equal(again.class_to_group, home.class_to_group)


GROUP = '  - {name: a, color: [1, 2, 3], classes: [floor]}\n'


@pytest.mark.parametrize('body, message', [
    ('groups: []\n', "'groups' must be a non-empty list"),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: [sofa]}\n',
     "names class 'sofa', which label set home does not have; its classes: floor, wall"),
    ('groups:\n' + GROUP + '  - {name: b, color: [1, 2, 3], classes: [wall, floor]}\n',
     "class 'floor' is in groups 'a' and 'b'"),
    ('unassigned: error\ngroups:\n' + GROUP,
     "classes ['wall', 'chair', 'table'] are in no group"),
    ('unassigned: maybe\ngroups:\n' + GROUP, "unassigned must be one of unknown, error"),
    ('groups:\n  - {name: a, color: [1, 2, 256], classes: [floor]}\n',
     'group 0: color must be 3 ints in 0..255'),
    ('groups:\n  - {name: a, color: [1, 2], classes: [floor]}\n', 'must be 3 ints'),
    ('unknown: {color: [-1, 0, 0]}\ngroups:\n' + GROUP, 'unknown colour must be 3 ints'),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: [floor], threshold: 1.5}\n',
     'group 0: threshold must be in [0, 1], got 1.5'),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: [floor], threshold: yes}\n',
     'threshold must be a number in [0, 1], got True'),
    ('default_threshold: -0.1\ngroups:\n' + GROUP, 'default_threshold must be in [0, 1]'),
    ('class_thresholds: {floor: .nan}\ngroups:\n' + GROUP, "threshold of 'floor' must be in"),
    ('class_thresholds: {sofa: 0.5}\ngroups:\n' + GROUP, "class_thresholds names class 'sofa'"),
    ('class_thresholds: [floor]\ngroups:\n' + GROUP, "'class_thresholds' must map class names"),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: [floor], treshold: 0.5}\n',
     "group 0: unknown keys ['treshold']"),
    ('group:\n' + GROUP, "unknown keys ['group']"),
    ('groups:\n  - {name: a, color: [1, 2, 3]}\n', "group 0: missing ['classes']"),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: floor}\n',
     'classes must be a list of class names'),
    ('groups:\n  - {name: a, color: [1, 2, 3], classes: []}\n', "group 0 ('a'): no classes"),
    ('groups:\n' + GROUP + '  - {name: a, color: [1, 2, 3], classes: [wall]}\n',
     'names must be non-empty and unique'),
    ('groups:\n  - {name: unknown, color: [1, 2, 3], classes: [wall]}\n',
     "names must be non-empty and unique (the unknown group is 'unknown')"),
    ('groups: [\n', 'not valid YAML'),
    ('- just a list\n', 'expected a mapping, got list'),
])
def test_bad_yaml_names_file_and_field(tmp_path, body, message):
    path = tmp_path / 'bad.yaml'
    path.write_text(body)
    with pytest.raises(ClassGroupsError, match='bad.yaml') as info:
        load_class_groups(path, HOME)
    assert message in str(info.value)


def test_at_most_255_groups():
    many = LabelSet.generic(256)
    groups = [Group(f'g{i}', (0, 0, 0), (f'class_{i}',)) for i in range(256)]
    with pytest.raises(ClassGroupsError, match=r'256 groups, at most 255 \(ids 0..254, 255'):
        ClassGroups(groups, many)
    assert ClassGroups(groups[:255], many).num_groups == 255


def test_missing_file_and_unknown_name():
    with pytest.raises(ClassGroupsError, match="'nav9' is neither a built-in .*camvid_nav2"):
        load_class_groups('nav9', HOME)
    with pytest.raises(ClassGroupsError, match='is a folder'):
        ClassGroups.from_yaml(find_config_file('groups/camvid_nav2.yaml').parent, HOME)


def test_camvid_example_matches_the_nav2_costmap_example():
    """Each class type of config/nav2/semantic_costmap.yaml is a group of the same name with
    exactly its classes, and every CamVid class is in a group."""
    camvid = load_label_set('camvid')
    groups = load_class_groups('camvid_nav2', camvid)
    assert groups.unassigned == 'error'  # so every class has a group (checked on load)
    costmap = load_yaml(find_config_file('nav2/semantic_costmap.yaml'), 'costmap')
    camera = costmap['local_costmap']['local_costmap']['ros__parameters'][
        'semantic_segmentation_layer']['camera']
    by_name = {g.name: g for g in groups.groups}
    assert camera['class_types'] == [g.name for g in groups.groups[:2]]  # ids 0 and 1
    for class_type in camera['class_types']:
        assert sorted(by_name[class_type].classes) == sorted(camera[class_type]['classes'])
    # The obstacle threshold is the costmap's mark_confidence (128 of 255) rounded.
    obstacle = by_name['obstacle']
    assert obstacle.threshold == pytest.approx(camera['obstacle']['mark_confidence'] / 255,
                                               abs=0.01)
    # On a real frame's labels (as confident as can be): the ground truth's groups.
    from bisenet_ros.training.datasets import demo_dataset
    truth = demo_dataset().load(0)[1]
    mask = groups.group_ids(truth, np.ones(truth.shape, np.float32))
    road = truth == camvid.class_names.index('road')
    assert road.any() and (mask[road] == 0).all()
    assert (mask[truth == camvid.ignore_index] == UNKNOWN_ID).all()
    assert set(np.unique(mask)) <= {0, 1, 2, 3, UNKNOWN_ID}


def test_an_ignore_id_that_is_a_class_keeps_its_group():
    """A label set whose ignore id is one of its classes (0 here): that class is grouped as
    any other, since the mask cannot tell the two apart."""
    floor_ignored = LabelSet(name='f', class_names=('floor', 'wall'),
                             colors=((1, 1, 1), (2, 2, 2)), ignore_index=0)
    groups = ClassGroups([Group('floor', (0, 255, 0), ('floor',))], floor_ignored)
    np.testing.assert_array_equal(groups.group_ids(np.array([[0, 1, 2]], np.uint8)),
                                  [[0, 255, 255]])
