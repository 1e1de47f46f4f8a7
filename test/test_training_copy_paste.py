"""Rare-class copy-paste (train.copy_paste): what is pasted where, what never is, and that the
option off leaves the training samples bit-identical to the augmentation before it existed."""

import numpy as np
import pytest
import torch

from bisenet_ros.labels import load_label_set
from bisenet_ros.training.config import ConfigError, DEFAULTS, merge
from bisenet_ros.training.copy_paste import (
    build_copy_paste, copy_paste_config, CopyPaste, CopyPasteConfig, paste_pixels,
    source_frames)
from bisenet_ros.training.datasets import build_train_dataset, IGNORE
from bisenet_ros.training.sampler import IterationBatchSampler
from bisenet_ros.training.synthetic import write_toy_dataset
from bisenet_ros.training.trainer import augment_config, AugmentedDataset, Trainer
from bisenet_ros.training.transforms import (
    AugmentConfig, color_jitter, focus_pixel, pad_and_crop, photometric, random_scale,
    to_tensor)

RARE = 3
#: geometry that leaves a 20x30 frame as it is: no scale, a crop of the whole frame, no flip
SAME = AugmentConfig(crop=(20, 30), scale_range=(1.0, 1.0), hflip=0.0)


class _Frames:
    """In-memory frames with ``load``/``len``, like a cached dataset."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def load(self, index):
        return self.pairs[index]


def _frame(value, rare_box=None):
    """A 20x30 frame of one grey ``value``, class 0, with class RARE in ``rare_box`` (rows, cols
    slices), coloured (value, 0, 255 - value) there."""
    image = np.full((20, 30, 3), value, np.uint8)
    label = np.zeros((20, 30), np.uint8)
    if rare_box is not None:
        label[rare_box] = RARE
        image[rare_box] = (value, 0, 255 - value)
    return image, label


def _frames():
    """Frame 0: no rare class; 1: RARE in rows 2-5, cols 3-8; 2: RARE in rows 10-14, cols 20-27
    with an ignore border around it."""
    third = _frame(120, np.s_[10:15, 20:28])
    third[1][9, 19:29] = IGNORE
    return _Frames([_frame(10), _frame(60, np.s_[2:6, 3:9]), third])


def _locked(frames):
    for image, label in frames.pairs:
        image.flags.writeable = label.flags.writeable = False  # writing into a source raises
    return frames


def test_paste_pixels_takes_the_source_classes_only_and_never_ignore():
    image, label = _frame(200)
    source_image, source_label = _frame(50, np.s_[5:10, 5:10])
    source_label[0:3, :] = IGNORE
    source_label[15:, :] = 1  # a class not pasted
    pasted = np.zeros(256, bool)
    pasted[RARE] = True
    out_image, out_label = paste_pixels(image, label, source_image, source_label, pasted)
    mask = source_label == RARE
    assert np.array_equal(out_label[mask], source_label[mask])
    assert np.array_equal(out_image[mask], source_image[mask])
    assert np.array_equal(out_label[~mask], label[~mask])  # ignore and class 1 not pasted
    assert np.array_equal(out_image[~mask], image[~mask])
    assert (label == 0).all() and (image == 200).all()  # inputs untouched
    # a source of another size: the top-left overlap
    small_image, small_label = source_image[:8, :7], source_label[:8, :7]
    out_image, out_label = paste_pixels(image, label, small_image, small_label, pasted)
    assert (out_label == RARE).sum() == 3 * 2 and (out_label[5:8, 5:7] == RARE).all()
    # nothing to paste: the inputs come back as they are
    assert paste_pixels(image, label, *_frame(9), pasted)[0] is image


def test_source_frames_lists_the_frames_of_each_class():
    sources = source_frames(_frames(), (RARE, 7))
    assert sources[RARE].tolist() == [1, 2] and sources[7].tolist() == []


def test_pasted_objects_carry_the_sources_labels_and_pixels():
    frames = _locked(_frames())
    paster = CopyPaste(frames, CopyPasteConfig(prob=1.0, classes=(RARE,), max_sources=1),
                       SAME, (0.5, 0.5, 0.5))
    image, label = _frame(200)
    seen = set()
    for seed in range(12):
        out_image, out_label = paster(image, label, np.random.default_rng(seed), exclude=0)
        mask = out_label == RARE
        source = 1 if mask[2:6, 3:9].all() else 2
        seen.add(source)
        source_image, source_label = frames.load(source)
        assert np.array_equal(mask, source_label == RARE)  # ignore pixels of 2: not pasted
        assert np.array_equal(out_image[mask], source_image[mask])
        assert np.array_equal(out_image[~mask], image[~mask])
        assert (out_label[~mask] == 0).all()
    assert seen == {1, 2}
    # the flip of the source moves its object with it
    flipped = CopyPaste(frames, CopyPasteConfig(prob=1.0, classes=(RARE,)),
                        AugmentConfig(crop=(20, 30), scale_range=(1.0, 1.0), hflip=1.0),
                        (0.5, 0.5, 0.5))
    out_label = flipped(image, label, np.random.default_rng(0), exclude=2)[1]
    assert np.array_equal(out_label == RARE, frames.load(1)[1][:, ::-1] == RARE)


def test_up_to_max_sources_and_never_the_samples_own_frame():
    frames = _locked(_frames())
    image, label = _frame(200)
    paster = CopyPaste(frames, CopyPasteConfig(prob=1.0, classes=(RARE,), max_sources=2),
                       SAME, (0.5, 0.5, 0.5))
    counts = {int((paster(image, label, np.random.default_rng(s), exclude=0)[1] == RARE).sum())
              for s in range(20)}
    assert counts == {24, 40, 64}  # frame 1, frame 2 or both
    # frame 1 is the only other frame with the class: sample 2 gets it, and only it
    for seed in range(5):
        out_label = paster(image, label, np.random.default_rng(seed), exclude=2)[1]
        assert np.array_equal(out_label == RARE, frames.load(1)[1] == RARE)
    alone = _Frames(frames.pairs[:2])
    lonely = CopyPaste(alone, CopyPasteConfig(prob=1.0, classes=(RARE,)), SAME, (0.5,) * 3)
    assert lonely(image, label, np.random.default_rng(0), exclude=1)[0] is image


def test_prob_zero_pastes_nothing():
    image, label = _frame(200)
    paster = CopyPaste(_frames(), CopyPasteConfig(prob=0.0, classes=(RARE,)), SAME, (0.5,) * 3)
    for seed in range(10):
        out = paster(image, label, np.random.default_rng(seed), exclude=0)
        assert out[0] is image and out[1] is label
    camvid = load_label_set('camvid')
    off = copy_paste_config(merge(DEFAULTS['train']['copy_paste'], {'classes': ['pole']}), camvid)
    assert off.prob == 0 and build_copy_paste(off, _frames(), SAME, camvid) is None


def _augment_before_copy_paste(image, label, cfg, rng, mean):
    """transforms.augment as it was before copy-paste (git d13e4c8): the reference."""
    lo, hi = cfg.scale_range
    image, label = random_scale(image, label, cfg.base_scale * float(rng.uniform(lo, hi)))
    if cfg.crop is not None:
        fill = [round(255 * m) for m in mean]
        focus = None
        if cfg.focus_prob > 0 and rng.random() < cfg.focus_prob:
            focus = focus_pixel(label, cfg.focus_classes, rng)
        image, label = pad_and_crop(image, label, tuple(cfg.crop), rng, fill, focus)
    if rng.random() < cfg.hflip:
        image, label = image[:, ::-1], label[:, ::-1]
    image = color_jitter(image, rng, cfg.brightness, cfg.contrast, cfg.saturation)
    image = photometric(image, cfg, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp('toy'), train=6, val=1, size=(48, 64))


def _train(**settings):
    base = {'crop': [32, 40], 'rare_classes': ['disc'], 'rare_crop_prob': 0.5,
            'photometric': 'strong', 'batch_size': 3}
    return merge(DEFAULTS['train'], dict(base, **settings))


def _samples(toy, train, iterations=3):
    dataset = build_train_dataset(dict(DEFAULTS['dataset'], **toy), cache=True)
    cfg = augment_config(train, dataset.label_set)
    paster = build_copy_paste(copy_paste_config(train['copy_paste'], dataset.label_set),
                              dataset, cfg, dataset.label_set)
    data = AugmentedDataset(dataset, cfg, paster)
    sampler = IterationBatchSampler(len(dataset), 3, seed=int(train['seed']), stop=iterations)
    keys = [key for batch in sampler for key in batch]
    return dataset, cfg, keys, [data[key] for key in keys]


def test_option_off_samples_are_bit_identical_to_the_augmentation_before_it(toy):
    dataset, cfg, keys, samples = _samples(toy, _train())
    mean, std = dataset.label_set.mean, dataset.label_set.std
    for (index, seed), (image, label) in zip(keys, samples):
        image_0, label_0 = dataset.load(index)
        ref_image, ref_label = _augment_before_copy_paste(
            image_0, label_0, cfg, np.random.default_rng(list(seed)), mean)
        assert torch.equal(label, torch.from_numpy(ref_label.astype(np.int64)))
        assert torch.equal(image, to_tensor(ref_image, mean, std))


def test_option_on_only_adds_pasted_objects_to_the_same_samples(toy):
    plain = {'brightness': 0.0, 'contrast': 0.0, 'saturation': 0.0, 'photometric': None}
    _, _, keys, off = _samples(toy, _train(**plain), iterations=6)
    on = {'prob': 1.0, 'classes': ['disc'], 'max_sources': 2}
    dataset, _, same_keys, pasted = _samples(toy, _train(copy_paste=on, **plain), iterations=6)
    assert keys == same_keys
    changed = 0
    for (image, label), (image_on, label_on) in zip(off, pasted):
        diff = label_on != label
        assert (label_on[diff] == 2).all()  # what differs is pasted disc
        kept = label_on == label
        assert torch.equal(image_on[:, kept & (label != 2)], image[:, kept & (label != 2)])
        changed += int(diff.sum())
    assert changed > 0
    again = _samples(toy, _train(copy_paste=on, **plain), iterations=6)[3]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(pasted, again))
    assert all(dataset.load(i)[1].flags.writeable for i in range(len(dataset)))


@pytest.mark.parametrize('setting, message', [
    ({'prob': 1.5, 'classes': ['pole']}, r'train.copy_paste.prob must be a number in \[0, 1\] '
                                         r'\(0 = off\), got 1.5'),
    ({'prob': -0.1, 'classes': ['pole']}, r'prob must be a number in \[0, 1\].*got -0.1'),
    ({'prob': 'half', 'classes': ['pole']}, "prob must be a number.*got 'half'"),
    ({'prob': 0.5, 'classes': ['pole', 'poel']}, r"\['poel'\] are not classes of label set "
                                                 r'camvid; expected some of sky, building'),
    ({'prob': 0.5, 'classes': 'pole'}, "must be a list of class names.*got 'pole'"),
    ({'prob': 0.5, 'classes': []}, 'must name at least one class when'),
    ({'prob': 0.5, 'classes': ['pole'], 'max_sources': 0}, 'max_sources must be an integer >= 1'),
    ({'prob': 0.5, 'classes': ['pole'], 'sources': 2}, r"unknown key\(s\) \['sources'\]"),
    (0.5, 'train.copy_paste must be a mapping of prob, classes, max_sources, got 0.5'),
])
def test_bad_settings_are_named(setting, message):
    with pytest.raises(ValueError, match=message):
        copy_paste_config(setting, load_label_set('camvid'))


def test_trainer_checks_class_names_and_builds_the_index(toy, tmp_path):
    def config(classes):
        return merge(DEFAULTS, {'dataset': toy, 'output_dir': str(tmp_path), 'train': {
            'crop': [32, 40], 'batch_size': 2, 'threads': 1,
            'copy_paste': {'prob': 0.5, 'classes': classes}}})

    with pytest.raises(ConfigError, match=r"\['pole'\] are not classes of label set toy3"):
        Trainer(config(['pole']))
    trainer = Trainer(config(['disc']))
    assert trainer.copy_paste is not None
    assert trainer.copy_paste.sources[2].tolist() == list(range(6))  # every toy frame has discs
    images, labels = next(iter(trainer.data_loader(0, 1)[0]))
    assert images.shape == (2, 3, 32, 40) and labels.shape == (2, 32, 40)
