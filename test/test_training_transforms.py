"""Training augmentation: crops that favour rare classes, and the share of rare pixels they give
on real CamVid frames."""

import cv2
import numpy as np
import pytest

from bisenet_ros.training.datasets import IGNORE
from bisenet_ros.training.transforms import (
    AugmentConfig, augment, focus_pixel, pad_and_crop, photometric, photometric_settings,
    PHOTOMETRIC_KEYS)


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


def _frame(seed=0):
    """A 48x64 RGB frame: a horizontal grey ramp plus coloured squares."""
    image = np.tile(np.linspace(30, 220, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    image[10:20, 10:20] = (200, 40, 40)
    image[25:35, 40:50] = (40, 60, 210)
    return image


def test_photometric_off_changes_nothing_and_draws_nothing():
    image, rng = _frame(), np.random.default_rng(5)
    out = photometric(image, AugmentConfig(), rng)
    assert out is image
    assert rng.random() == np.random.default_rng(5).random()  # no number drawn
    # the default augmentation is the one before these options: same crops, same colours
    label = np.zeros(image.shape[:2], np.uint8)
    cfg = AugmentConfig(crop=(32, 32), scale_range=(0.8, 1.2))
    strong = AugmentConfig(crop=(32, 32), scale_range=(0.8, 1.2),
                           **photometric_settings('strong'))
    plain = augment(image, label, cfg, np.random.default_rng(1), (0.4, 0.4, 0.4))
    again = augment(image, label, cfg, np.random.default_rng(1), (0.4, 0.4, 0.4))
    assert np.array_equal(plain[0], again[0])
    rich = augment(image, label, strong, np.random.default_rng(1), (0.4, 0.4, 0.4))
    assert np.array_equal(rich[1], plain[1])  # geometry untouched: photometric draws come last


@pytest.mark.parametrize('seed', range(4))
def test_each_photometric_operation(seed):
    image = _frame()
    gamma = photometric(image, AugmentConfig(gamma=0.5), np.random.default_rng(seed))
    mid = image[0, 32].astype(int)
    assert gamma.dtype == np.uint8 and gamma.shape == image.shape
    assert (gamma[0, 32].astype(int) != mid).all()  # mid-grey moves; black/white stay
    assert np.array_equal(gamma[image == 0], image[image == 0])
    assert (np.diff(gamma[0, :, 0].astype(int)) >= 0).all()  # monotonic

    hue = photometric(image, AugmentConfig(hue=0.2), np.random.default_rng(seed))
    grey = np.ptp(image, axis=2) == 0
    assert np.abs(hue[grey].astype(int) - image[grey]).max() <= 1  # greys have no hue
    shift = int(round(np.random.default_rng(seed).uniform(-0.2, 0.2) * 180))
    before = cv2.cvtColor(image[10:20, 10:20], cv2.COLOR_RGB2HSV)[..., 0].astype(int)
    after = cv2.cvtColor(hue[10:20, 10:20], cv2.COLOR_RGB2HSV)[..., 0].astype(int)
    moved = (after - before - shift) % 180
    assert np.minimum(moved, 180 - moved).max() <= 2  # the red square turned by the shift
    assert np.abs(hue.max(2).astype(int) - image.max(2)).max() <= 2  # value kept

    blur = photometric(image, AugmentConfig(blur_prob=1.0, blur_sigma=2.0),
                       np.random.default_rng(seed))
    edge = image[10:20, 8:12, 0].astype(float)
    assert np.abs(np.diff(blur[10:20, 8:12, 0].astype(float), axis=1)).max() < \
        np.abs(np.diff(edge, axis=1)).max()

    noisy = photometric(image, AugmentConfig(noise_prob=1.0, noise_std=20.0),
                        np.random.default_rng(seed))
    diff = noisy.astype(float) - image
    assert 0 < diff[10:40, 20:40].std() < 21 and abs(diff[10:40, 20:40].mean()) < 3


def test_photometric_is_a_function_of_the_seed_and_probabilities_hold():
    cfg = AugmentConfig(**photometric_settings('strong'))
    image = _frame()
    a = photometric(image, cfg, np.random.default_rng(7))
    b = photometric(image, cfg, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, photometric(image, cfg, np.random.default_rng(8)))
    never = AugmentConfig(blur_prob=0.0, blur_sigma=3.0, noise_prob=0.0, noise_std=30.0)
    assert photometric(image, never, np.random.default_rng(1)) is image


def test_photometric_settings_fill_every_key():
    assert photometric_settings(None) == dict.fromkeys(PHOTOMETRIC_KEYS, 0.0)
    strong = photometric_settings('strong')
    assert set(strong) == set(PHOTOMETRIC_KEYS) and all(v > 0 for v in strong.values())
    assert photometric_settings({'hue': 0.1}) == dict(photometric_settings(None), hue=0.1)
    with pytest.raises(ValueError, match='hue'):
        photometric_settings({'hue': 0.9})
