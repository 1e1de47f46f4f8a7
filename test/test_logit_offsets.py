"""Per-class logit offsets (training/logit_offsets.py) and ``bisenet calibrate``
(tools/calibrate.py): the fit, the exact fold into the classifier bias, the CLI on a real
dataset and model, and training from a calibrated checkpoint."""

import numpy as np
import pytest
import torch

from bisenet_ros.cli import main as cli_main
from bisenet_ros.labels import load_label_set
from bisenet_ros.model.checkpoint import load_model, save_checkpoint
from bisenet_ros.model.factory import build_model
from bisenet_ros.training.logit_offsets import (add_logit_offsets, CLASSIFIER_BIAS,
                                                fit_logit_offsets, LOGIT_OFFSETS_META,
                                                recorded_offsets, sample_logits,
                                                scores_with_offsets)
from bisenet_ros.training.datasets import build_dataset
from bisenet_ros.training.synthetic import write_toy_dataset
from bisenet_ros.training.trainer import init_weights


def _suppressed_class_logits(seed=0, n=40_000, classes=4, suppressed=2, by=2.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = (3.0 * np.eye(classes)[labels] + rng.normal(0, 1.0, (n, classes))).astype(np.float32)
    logits[:, suppressed] -= by  # the model under-predicts this class
    return logits, labels


def test_the_fit_gives_an_under_predicted_class_back_its_pixels():
    logits, labels = _suppressed_class_logits()
    offsets, before, after = fit_logit_offsets(logits, labels)
    assert offsets.shape == (4,) and abs(float(offsets.mean())) < 1e-6
    others = np.delete(offsets, 2)
    assert offsets[2] - others.max() >= 1.5, offsets  # most of the 2.5 taken back
    recall = scores_with_offsets(logits, labels, offsets).scores().class_accuracy[2]
    assert recall > scores_with_offsets(logits, labels, np.zeros(4)).scores().class_accuracy[2]
    assert after > before + 0.05
    assert after == pytest.approx(scores_with_offsets(logits, labels, offsets).scores().miou)


def test_a_calibrated_model_needs_no_offsets():
    logits, labels = _suppressed_class_logits(seed=1, by=0.0)
    offsets, before, after = fit_logit_offsets(logits, labels)
    assert np.abs(offsets).max() <= 0.25 and after - before < 0.005


def test_folded_offsets_shift_the_logits_exactly():
    torch.manual_seed(0)
    model = build_model('bisenetv2', 5).eval()
    x = torch.randn(1, 3, 64, 96)
    offsets = np.array([0.5, -1.0, 0.0, 2.0, -1.5], np.float32)
    with torch.no_grad():
        plain = model(x)
        add_logit_offsets(model, offsets)
        shifted = model(x)
        add_logit_offsets(model, -offsets)
        restored = model(x)
    assert torch.allclose(shifted - plain, torch.from_numpy(offsets).view(1, 5, 1, 1), atol=1e-4)
    assert torch.allclose(restored, plain, atol=1e-5)
    with pytest.raises(ValueError, match='expected 5 values'):
        add_logit_offsets(model, [1.0, 2.0])


def test_recorded_offsets_must_name_every_class():
    names = ('a', 'b')
    assert recorded_offsets({}, names) is None
    meta = {LOGIT_OFFSETS_META: {'offsets': {'a': 0.5, 'b': -0.5}}}
    assert recorded_offsets(meta, names).tolist() == [0.5, -0.5]
    with pytest.raises(ValueError, match=r"expected offsets for the classes \['a', 'b', 'c'\]"):
        recorded_offsets(meta, ('a', 'b', 'c'))


@pytest.fixture(scope='module')
def toy_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    spec = write_toy_dataset(root, train=3, val=2, size=(48, 64))
    label_set = load_label_set(spec['label_set'])
    torch.manual_seed(3)
    model = build_model('bisenetv2', label_set.num_classes).eval()
    path = root / 'model.pt'
    save_checkpoint(path, model, label_set, meta={'config': {'dataset': spec}, 'val_scale': 1.0})
    return path, spec


def test_sampled_logits_are_the_model_logits_at_the_sampled_pixels(toy_checkpoint):
    path, spec = toy_checkpoint
    model = load_model(path)
    dataset = build_dataset(spec, 'train')
    logits, labels = sample_logits(model, dataset, stride=4, max_images=1)
    image, label = dataset.load(0)
    from bisenet_ros.training.transforms import to_tensor
    with torch.no_grad():
        full = model(to_tensor(image, dataset.label_set.mean, dataset.label_set.std)[None])[0]
    grid = full[:, 2::4, 2::4].flatten(1).T.numpy()
    target = label[2::4, 2::4].reshape(-1)
    keep = target != 255
    assert np.allclose(logits, grid[keep], atol=1e-5) and (labels == target[keep]).all()


def test_cli_writes_a_calibrated_copy_and_training_takes_the_offsets_out(
        toy_checkpoint, tmp_path, capsys):
    path, spec = toy_checkpoint
    original = load_model(path).state_dict()[CLASSIFIER_BIAS]
    out = tmp_path / 'calibrated.pt'
    assert cli_main(['calibrate', str(path), str(out), '--stride', '2', '--threads', '1']) == 0
    said = capsys.readouterr().out
    assert 'folder/train_images (3 images' in said and f'wrote {out}' in said
    calibrated = load_model(out)
    record = calibrated.checkpoint_info.meta[LOGIT_OFFSETS_META]
    offsets = recorded_offsets(calibrated.checkpoint_info.meta, calibrated.label_set.class_names)
    assert record['fitted_on'].startswith('folder/train_images') and record['stride'] == 2
    assert record['miou_after'] >= record['miou_before']
    assert torch.allclose(calibrated.state_dict()[CLASSIFIER_BIAS] - original,
                          torch.from_numpy(offsets), atol=1e-4)
    assert calibrated.checkpoint_info.meta['config'] == {'dataset': spec}  # the rest is kept

    # Fine-tuning or warm-starting from it starts from the trained bias.
    fresh = build_model('bisenetv2', calibrated.num_classes, aux_heads=True)
    init_weights(fresh, str(out))
    assert torch.allclose(fresh.state_dict()[CLASSIFIER_BIAS], original, atol=1e-5)

    # Calibrating again fits from the trained bias, not on top of the first fit.
    again = tmp_path / 'again.pt'
    assert cli_main(['calibrate', str(out), str(again), '--stride', '2', '--threads', '1']) == 0
    twice = load_model(again)
    offsets2 = recorded_offsets(twice.checkpoint_info.meta, twice.label_set.class_names)
    assert torch.allclose(twice.state_dict()[CLASSIFIER_BIAS] - original,
                          torch.from_numpy(offsets2), atol=1e-4)


def test_cli_refuses_to_overwrite_its_input(toy_checkpoint, caplog):
    path, _ = toy_checkpoint
    assert cli_main(['calibrate', str(path), str(path)]) == 1
    assert 'expected a new file, not the checkpoint itself' in caplog.text


def test_cli_warns_when_the_fit_sees_the_sequences_the_run_held_out(
        toy_checkpoint, tmp_path, caplog):
    path, spec = toy_checkpoint
    model = load_model(path)
    held_out = tmp_path / 'held_out.pt'
    save_checkpoint(held_out, model, model.label_set, meta={
        'config': {'dataset': dict(spec, holdout_sequences=['001'], val_split='holdout')},
        'val_scale': 1.0})
    with caplog.at_level('WARNING'):
        assert cli_main(['calibrate', str(held_out), str(tmp_path / 'a.pt'), '--stride', '4',
                         '--threads', '1', '--max-images', '1']) == 0
    assert "sequence(s) ['001'] that this model's run held out" in caplog.text
    caplog.clear()
    with caplog.at_level('WARNING'):  # the toy frames 000, 001, 002: only 001 is held out
        assert cli_main(['calibrate', str(path), str(tmp_path / 'b.pt'), '--stride', '4',
                         '--threads', '1', '--max-images', '1']) == 0
    assert 'held out' not in caplog.text
