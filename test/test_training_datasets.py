"""Datasets: label mapping of CamVid, Cityscapes and generic folders, and their errors."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bisenet_ros.training.datasets import (
    build_dataset, build_train_dataset, camvid, cityscapes, concat, DatasetError, frame_sequence,
    IGNORE, image_folder)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _rgb(h=8, w=12, value=100):
    return np.full((h, w, 3), value, np.uint8)


def test_camvid_real_frame_maps_void_to_ignore(camvid_dir):
    data = camvid(camvid_dir, 'val')
    assert len(data) == 101
    raw = cv2.imread(str(data.pairs[0][1]), cv2.IMREAD_UNCHANGED)
    image, label = data.load(0)
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
    assert np.array_equal(label == IGNORE, raw == 11)
    assert np.array_equal(label[raw != 11], raw[raw != 11])
    assert data.pairs[0][0].suffix == '.jpg'


def test_camvid_fake_layout_mapping_and_order(tmp_path):
    raw = np.array([[0, 5, 10, 11]], np.uint8).repeat(3, 0)
    for name in ('b', 'a'):
        _write(tmp_path / 'train' / f'{name}.jpg', _rgb(3, 4))
        _write(tmp_path / 'trainannot' / f'{name}.png', raw)
    data = camvid(tmp_path, 'train')
    assert [p[0].stem for p in data.pairs] == ['a', 'b']
    _, label = data.load(1)
    assert label[0].tolist() == [0, 5, 10, IGNORE]


def test_camvid_rejects_values_outside_the_set(tmp_path):
    _write(tmp_path / 'val' / 'x.png', _rgb(3, 4))
    _write(tmp_path / 'valannot' / 'x.png', np.full((3, 4), 12, np.uint8))
    with pytest.raises(DatasetError, match=r'values \[12\].*camvid.*0\.\.11'):
        camvid(tmp_path, 'val').load(0)


def test_unpaired_files_are_named(tmp_path):
    _write(tmp_path / 'train' / 'only_image.jpg', _rgb())
    _write(tmp_path / 'train' / 'both.jpg', _rgb())
    _write(tmp_path / 'trainannot' / 'both.png', np.zeros((8, 12), np.uint8))
    _write(tmp_path / 'trainannot' / 'only_label.png', np.zeros((8, 12), np.uint8))
    with pytest.raises(DatasetError, match="only_image.*only_label"):
        camvid(tmp_path, 'train')


def test_missing_folder_and_size_mismatch(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        camvid(tmp_path, 'train')
    _write(tmp_path / 'train' / 'a.jpg', _rgb(8, 12))
    _write(tmp_path / 'trainannot' / 'a.png', np.zeros((8, 10), np.uint8))
    with pytest.raises(DatasetError, match=r'10x8 but image .*12x8'):
        camvid(tmp_path, 'train').load(0)


def _fake_cityscapes(root: Path, label_ids: np.ndarray, split='val', city='ulm', n=2):
    for i in range(n):
        stem = f'{city}_000000_00000{i}'
        _write(root / 'leftImg8bit' / split / city / f'{stem}_leftImg8bit.png',
               _rgb(*label_ids.shape))
        _write(root / 'gtFine' / split / city / f'{stem}_gtFine_labelIds.png', label_ids)


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    ids = np.array([[0, 1, 6, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
                     29, 30, 31, 32, 33]], np.uint8)
    _fake_cityscapes(tmp_path, ids)
    data = cityscapes(tmp_path, 'val')
    assert len(data) == 2 and data.num_classes == 19
    _, label = data.load(0)
    expected = [IGNORE] * 3 + list(range(16)) + [IGNORE] * 2 + [16, 17, 18]
    assert label[0].tolist() == expected


def test_cityscapes_rejects_ids_above_33_and_unpaired(tmp_path):
    _fake_cityscapes(tmp_path, np.full((4, 4), 34, np.uint8))
    with pytest.raises(DatasetError, match=r'values \[34\]'):
        cityscapes(tmp_path, 'val').load(0)
    (tmp_path / 'gtFine' / 'val' / 'ulm' / 'ulm_000000_000001_gtFine_labelIds.png').unlink()
    with pytest.raises(DatasetError, match='ulm_000000_000001'):
        cityscapes(tmp_path, 'val')


def test_folder_dataset_uses_the_label_set_yaml(tmp_path):
    spec = {'name': 'two', 'ignore_index': 7,
            'classes': [{'name': 'floor', 'color': [0, 0, 0]},
                        {'name': 'wall', 'color': [255, 255, 255]}]}
    (tmp_path / 'two.yaml').write_text(yaml.safe_dump(spec))
    _write(tmp_path / 'img' / 'f.png', _rgb(2, 3))
    _write(tmp_path / 'lab' / 'f.png', np.array([[0, 1, 7], [1, 0, 7]], np.uint8))
    data = build_dataset({'kind': 'folder', 'label_set': str(tmp_path / 'two.yaml'),
                          'val_images': str(tmp_path / 'img'),
                          'val_labels': str(tmp_path / 'lab')}, 'val')
    _, label = data.load(0)
    assert label.tolist() == [[0, 1, IGNORE], [1, 0, IGNORE]]
    _write(tmp_path / 'lab' / 'f.png', np.array([[0, 2, 7], [1, 0, 7]], np.uint8))
    with pytest.raises(DatasetError, match=r'values \[2\].*two'):
        image_folder(tmp_path / 'img', tmp_path / 'lab', str(tmp_path / 'two.yaml')).load(0)


def test_label_png_must_be_single_channel(tmp_path):
    _write(tmp_path / 'img' / 'f.png', _rgb())
    _write(tmp_path / 'lab' / 'f.png', _rgb())
    with pytest.raises(DatasetError, match='single-channel'):
        image_folder(tmp_path / 'img', tmp_path / 'lab', 'camvid').load(0)


def test_build_dataset_errors():
    with pytest.raises(DatasetError, match="dataset.kind"):
        build_dataset({'kind': 'coco'}, 'train')
    with pytest.raises(DatasetError, match='dataset.root'):
        build_dataset({'kind': 'camvid'}, 'train')


def test_real_camvid_frames_per_sequence(camvid_dir):
    # the counts docs/TRAINING.md quotes: val is one sequence, 204 train frames share it
    assert camvid(camvid_dir, 'train').sequences() == {'0001TP': 62, '0006R0': 101,
                                                       '0016E5': 204}
    assert camvid(camvid_dir, 'val').sequences() == {'0016E5': 101}
    spec = {'kind': 'camvid', 'root': str(camvid_dir), 'train_split': ['train', 'val'],
            'holdout_sequences': ['0006R0']}
    train = build_train_dataset(spec)
    assert len(train) == 367 and train.sequences() == {'0001TP': 62, '0016E5': 305}
    held = build_dataset(spec, 'holdout')
    assert len(held) == 101 and held.sequences() == {'0006R0': 101}
    assert not {p[0] for p in held.pairs} & {p[0] for p in train.pairs}


def _sequences_layout(root: Path) -> dict:
    """CamVid layout: train A_1, A_2, B_1; val A_3, C_1 (label value = the frame's number)."""
    for split, names in (('train', ['A_1', 'A_2', 'B_1']), ('val', ['A_3', 'C_1'])):
        for name in names:
            _write(root / split / f'{name}.png', _rgb(3, 4))
            _write(root / f'{split}annot' / f'{name}.png',
                   np.full((3, 4), int(name[-1]), np.uint8))
    return {'kind': 'camvid', 'root': str(root)}


def test_training_splits_together_without_the_held_out_sequences(tmp_path):
    spec = _sequences_layout(tmp_path)
    assert frame_sequence(tmp_path / 'train' / 'A_1.png') == 'A'
    assert [p[0].stem for p in build_train_dataset(spec).pairs] == ['A_1', 'A_2', 'B_1']
    spec.update(train_split=['train', 'val'], holdout_sequences=['B'])
    train = build_train_dataset(spec, cache=True)
    assert [p[0].stem for p in train.pairs] == ['A_1', 'A_2', 'A_3', 'C_1']
    assert train.cache and train.load(2)[1][0, 0] == 3  # A_3, read from val
    held = build_dataset(spec, 'holdout')
    assert [p[0].stem for p in held.pairs] == ['B_1'] and 'holdout B' in held.name
    assert held.load(0)[1][0, 0] == 1
    # holdout:SEQ names the sequences whatever the config holds out; several with commas
    assert [p[0].stem for p in build_dataset(spec, 'holdout:C,B').pairs] == ['B_1', 'C_1']
    assert [p[0].stem for p in build_dataset(spec, 'val').pairs] == ['A_3', 'C_1']


def test_held_out_sequence_errors_name_what_was_expected(tmp_path):
    spec = _sequences_layout(tmp_path)
    with pytest.raises(DatasetError, match=r"no frames of sequence\(s\) \['Z'\].*"
                       r"A \(2 frames\), B \(1 frames\)"):
        build_train_dataset(dict(spec, holdout_sequences=['Z']))
    with pytest.raises(DatasetError, match=r"no frames of sequence\(s\) \['C'\]"):
        build_dataset(spec, 'holdout:C')  # C is in val, which is not a training split here
    with pytest.raises(DatasetError, match=r"needs held-out sequences.*holdout_sequences"):
        build_dataset(spec, 'holdout')
    with pytest.raises(DatasetError, match='no frames left'):
        build_train_dataset(dict(spec, holdout_sequences=['A', 'B']))
    with pytest.raises(DatasetError, match='train_split must be a split name'):
        build_train_dataset(dict(spec, train_split=[]))
    with pytest.raises(DatasetError, match='folder .*nope'):
        build_train_dataset(dict(spec, train_split=['train', 'nope']))


def test_concat_refuses_different_label_mappings(tmp_path):
    spec = _sequences_layout(tmp_path)
    ours = build_dataset(spec, 'train')
    toy = tmp_path / 'toy.yaml'
    toy.write_text(yaml.safe_dump({'name': 'two', 'ignore_index': 7, 'classes': [
        {'name': 'a', 'color': [0, 0, 0]}, {'name': 'b', 'color': [1, 1, 1]}]}))
    other = image_folder(tmp_path / 'train', tmp_path / 'trainannot', str(toy))
    with pytest.raises(DatasetError, match='different label mappings'):
        concat([ours, other], 'both')
