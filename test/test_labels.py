"""Label sets from YAML: built-ins, user files, validation, colouring."""

import numpy as np
import pytest

from bisenet_ros.labels import colorize, LabelSet, LabelSetError, load_label_set


def test_builtin_cityscapes_and_camvid():
    city = load_label_set('cityscapes')
    camvid = load_label_set('camvid')
    assert city.num_classes == 19 and city.ignore_index == 255
    assert city.class_names[0] == 'road' and city.colors[0] == (128, 64, 128)
    assert city.mean == (0.3257, 0.3690, 0.3223)
    assert camvid.num_classes == 11 and camvid.ignore_index == 11
    assert camvid.class_names[3] == 'road' and camvid.colors[4] == (60, 40, 222)


def test_user_yaml_round_trip(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text('name: lab\nignore_index: 0\nclasses:\n'
                    '  - {name: floor, color: [1, 2, 3]}\n  - {name: wall, color: [4, 5, 6]}\n')
    labels = load_label_set(path)
    assert labels.class_names == ('floor', 'wall') and labels.ignore_index == 0
    assert LabelSet.from_dict(labels.to_dict(), 'x') == labels


@pytest.mark.parametrize('body, message', [
    ('classes: 3\n', "'classes' must be a list"),
    ('classes:\n  - {name: a}\n', 'class 0 must have name and color'),
    ('classes:\n  - {name: a, color: [1, 2]}\n', 'colour of class 0 must be 3 ints'),
    ('classes:\n  - {name: a, color: [1, 2, 300]}\n', 'colour of class 0'),
    ('std: [0, 1, 1]\nclasses:\n  - {name: a, color: [1, 2, 3]}\n', 'std must be positive'),
    ('classes: [\n', 'not valid YAML'),
])
def test_bad_yaml_names_file_and_field(tmp_path, body, message):
    path = tmp_path / 'bad.yaml'
    path.write_text(body)
    with pytest.raises(LabelSetError, match='bad.yaml') as info:
        load_label_set(path)
    assert message in str(info.value)


def test_unknown_name_lists_builtins():
    with pytest.raises(LabelSetError, match='neither a built-in.*cityscapes'):
        load_label_set('mapillary')


def test_colorize_uses_palette_and_blacks_out_ignore():
    camvid = load_label_set('camvid')
    labels = np.array([[0, 3], [11, 255]], np.uint8)
    rgb = colorize(labels, camvid)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 128, 128) and tuple(rgb[0, 1]) == (128, 64, 128)
    assert tuple(rgb[1, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == (0, 0, 0)


def test_generic_label_set_sizes():
    generic = LabelSet.generic(300)
    assert generic.num_classes == 300 and generic.palette().shape == (300, 3)
