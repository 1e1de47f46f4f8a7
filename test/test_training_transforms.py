"""Training augmentation: crops that favour rare classes, and the share of rare pixels they give
on real CamVid frames."""

import numpy as np
import pytest

from bisenet_ros.training.datasets import IGNORE
from bisenet_ros.training.transforms import AugmentConfig, augment, focus_pixel, pad_and_crop


def _scene():
    """A 60x80 label map: class 0 everywhere, a 2x2 patch of class 3 at rows 50-51, cols 5-6."""
    label = np.zeros((60, 80), np.uint8)
    label[50:52, 5:7] = 3
    image = np.full((60, 80, 3), 100, np.uint8)
    return image, label


def test_focus_pixel_picks_a_present_rare_class_only():
    _, label = _scene()
    rng = np.random.default_rng(0)
    for _ in range(20):
        row, col = focus_pixel(label, (3, 7), rng)  # class 7 is absent
        assert label[row, col] == 3
    assert focus_pixel(label, (7,), rng) is None


@pytest.mark.parametrize('seed', range(10))
def test_a_focused_crop_contains_the_focus_pixel(seed):
    image, label = _scene()
    rng = np.random.default_rng(seed)
    _, crop = pad_and_crop(image, label, (16, 16), rng, (0, 0, 0), focus=(50, 5))
    assert crop.shape == (16, 16) and (crop == 3).any()


def test_focused_crops_near_the_border_pad_with_ignore():
    image, label = _scene()
    _, crop = pad_and_crop(image[:10], label[:10], (16, 16), np.random.default_rng(0),
                           (0, 0, 0), focus=(9, 79))
    assert crop.shape == (16, 16) and (crop[10:] == IGNORE).all()


@pytest.mark.slow
def test_rare_pixels_share_with_and_without_focused_crops(camvid_dir):
    """Evidence for train.rare_crop_prob: the share of rare-class pixels in 192x256 crops of
    real CamVid frames (printed); focused crops must raise it."""
    import cv2
    images = sorted((camvid_dir / 'train').iterdir())[::6]
    rare = (2, 6, 7, 9, 10)  # pole, sign_symbol, fence, pedestrian, bicyclist
    frames = [(cv2.imread(str(p))[:, :, ::-1],
               cv2.imread(str(camvid_dir / 'trainannot' / (p.stem + '.png')),
                          cv2.IMREAD_GRAYSCALE)) for p in images]
    shares = {}
    for prob in (0.0, 0.5, 1.0):
        cfg = AugmentConfig(crop=(192, 256), scale_range=(0.75, 1.5), focus_classes=rare,
                            focus_prob=prob)
        rng = np.random.default_rng(1)
        counts = np.zeros(2)
        for image, label in frames:
            for _ in range(6):
                _, crop = augment(image, label, cfg, rng, (0.4, 0.4, 0.4))
                counts += [np.isin(crop, rare).sum(), (crop < 11).sum()]
        shares[prob] = counts[0] / counts[1]
    print('rare-class pixel share by rare_crop_prob: ' +
          ', '.join(f'{p}: {100 * v:.2f}%' for p, v in shares.items()))
    assert shares[1.0] > 1.15 * shares[0.0]
