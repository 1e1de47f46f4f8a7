"""``bisenet bag-to-dataset``: frames chosen by stride or scene change, teacher labels with an
ignore id below the confidence threshold, a manifest, and a folder ``bisenet train`` reads."""

import json

import cv2
import numpy as np
import pytest
import yaml

from bisenet_ros import cli
from bisenet_ros.training.datasets import demo_dataset
from bisenet_ros.bags.make import BagTopics, write_frames_bag
from bisenet_ros.bags.to_dataset import bag_to_dataset, FrameSelector, scene_difference, \
    thumbnail
from bisenet_ros.labels import load_label_set

START = 1_700_000_000_000_000_000


@pytest.fixture(scope='module')
def frames():
    data = demo_dataset()
    return [data.load(i)[0] for i in range(3)]


def _bag(path, images):
    write_frames_bag(lambda i: (images[i], None), range(len(images)), path, rate_hz=10,
                     start_ns=START, topics=BagTopics(labels=None), backend='rosbags')
    return path


def test_stride_and_scene_change_selection(frames):
    a, b = frames[0], frames[1]
    stride = FrameSelector('stride', stride=3)
    assert [i for i in range(7) if stride.keep(i, a)] == [0, 3, 6]
    assert scene_difference(thumbnail(a), thumbnail(a)) == 0.0
    assert scene_difference(thumbnail(a), thumbnail(b)) > 0.02
    scene = FrameSelector('scene-change', threshold=0.02)
    noisy = np.clip(a.astype(int) + 1, 0, 255).astype(np.uint8)  # a, with sensor noise
    assert [scene.keep(i, img) for i, img in enumerate([a, noisy, a, b, b, a])] == \
        [True, False, False, True, False, True]
    for bad in ({'rule': 'random'}, {'stride': 0}, {'rule': 'scene-change', 'threshold': 0}):
        with pytest.raises(ValueError):
            FrameSelector(**bad)


def test_scene_change_keeps_one_frame_per_scene_with_a_manifest(frames, tmp_path):
    bag = _bag(tmp_path / 'bag', [frames[0]] * 3 + [frames[1]] * 2 + [frames[2]])
    manifest = bag_to_dataset(bag, tmp_path / 'out', '/camera/image_raw',
                              selector=FrameSelector('scene-change', threshold=0.02))
    kept = manifest['frames']
    assert [f['index'] for f in kept] == [0, 3, 5]
    assert [f['stamp_ns'] for f in kept] == [START, START + 300_000_000, START + 500_000_000]
    assert manifest['selection']['rule'] == 'scene-change' and manifest['teacher'] is None
    assert manifest['source']['topic'] == '/camera/image_raw'
    assert json.loads((tmp_path / 'out' / 'manifest.json').read_text()) == manifest
    written = sorted(p.name for p in (tmp_path / 'out' / 'train_images').iterdir())
    assert written == [f"{f['stem']}.png" for f in kept]
    first = cv2.imread(str(tmp_path / 'out' / 'train_images' / written[0]))
    assert first.shape == frames[0].shape
    with pytest.raises(ValueError, match='not empty'):
        bag_to_dataset(bag, tmp_path / 'out', '/camera/image_raw')


def test_bag_to_dataset_with_teacher_then_train_reads_it(frames, tmp_path, monkeypatch):
    bag = _bag(tmp_path / 'bag', frames + frames[:1])
    monkeypatch.chdir(tmp_path)
    assert cli.main(['bag-to-dataset', str(bag), '-o', 'data', '--teacher',
                     '--teacher-scales', '0.5', '1.0', '--confidence-threshold', '0.6',
                     '--val-every', '2', '--threads', '1']) == 0
    out = tmp_path / 'data'
    manifest = json.loads((out / 'manifest.json').read_text())
    assert [f['split'] for f in manifest['frames']] == ['train', 'val', 'train', 'val']
    teacher = manifest['teacher']
    assert teacher['scales'] == [0.5, 1.0] and teacher['flip'] is True
    assert teacher['model'].endswith('camvid_bisenetv2.pt')
    camvid = load_label_set('camvid')
    assert teacher['ignore_index'] == camvid.ignore_index
    shares = []
    for entry in manifest['frames']:
        labels = cv2.imread(str(out / f"{entry['split']}_labels" / f"{entry['stem']}.png"),
                            cv2.IMREAD_UNCHANGED)
        assert labels.shape == tuple(entry['size']) and labels.dtype == np.uint8
        assert labels.max() <= camvid.ignore_index
        ignored = float((labels == camvid.ignore_index).mean())
        assert ignored == pytest.approx(entry['ignored_share'], abs=1e-4)
        shares.append(ignored)
    assert 0 < max(shares) < 0.9  # some pixels below 0.6 confidence, most above
    config = yaml.safe_load((out / 'train.yaml').read_text())
    assert config['dataset']['kind'] == 'folder'
    assert config['model']['init'] == teacher['model']
    assert cli.main(['train', '--config', str(out / 'train.yaml'), '--iterations', '1',
                     '--batch-size', '2', '--set', 'train.crop=[64,96]', '--set',
                     'train.threads=1', '--set', 'val.every=1', '--set', 'train.num_workers=0',
                     '-o', 'run']) == 0
    assert (tmp_path / 'run' / 'final.pt').is_file()
    assert (tmp_path / 'run' / 'val_log.csv').is_file()
