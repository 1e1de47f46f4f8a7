"""bisenet evaluate and export-checkpoint (through their tool modules) and the evaluation
loop (single scale and multi-scale + flip)."""

import json

import numpy as np
import pytest
import torch

from bisenet_ros.labels import load_label_set
from bisenet_ros.model.checkpoint import CheckpointError, load_model
from bisenet_ros.tools import evaluate as evaluate_tool
from bisenet_ros.tools import export_checkpoint as export_tool
from bisenet_ros.training.config import DEFAULTS, merge
from bisenet_ros.training.datasets import build_dataset
from bisenet_ros.training.validation import evaluate_dataset
from bisenet_ros.training.curves import plot_training_curve
from bisenet_ros.training.synthetic import TOY_LABEL_SET, write_toy_dataset
from bisenet_ros.training.trainer import Trainer


class NearestColour(torch.nn.Module):
    """Logits = minus the distance of each (normalised) pixel to each class colour."""

    def __init__(self, label_set):
        super().__init__()
        colours = torch.tensor(label_set.colors, dtype=torch.float32) / 255
        mean, std = torch.tensor(label_set.mean), torch.tensor(label_set.std)
        self.register_buffer('centres', ((colours - mean) / std).view(-1, 3, 1, 1))

    def forward(self, x):
        return -((x.unsqueeze(1) - self.centres.unsqueeze(0)) ** 2).sum(2)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy')
    return write_toy_dataset(root, train=2, val=3, size=(48, 64))


def test_evaluation_of_a_colour_classifier_is_near_perfect_at_every_setting(toy):
    dataset = build_dataset(toy, 'val')
    model = NearestColour(dataset.label_set)
    for scales, flip in (((1.0,), False), ((0.5, 1.0, 1.5), True)):
        scores = evaluate_dataset(model, dataset, scales=scales, flip=flip).scores()
        assert scores.miou > 0.9 and scores.pixel_accuracy > 0.95
        assert scores.pixels == sum(int((dataset.load(i)[1] != 255).sum())
                                    for i in range(len(dataset)))


def test_evaluation_of_a_constant_model_gives_the_class_share(toy):
    dataset = build_dataset(toy, 'val')

    class AlwaysBackground(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 3, *x.shape[2:])
            out[:, 0] = 1
            return out

    matrix = evaluate_dataset(AlwaysBackground(), dataset, max_images=2)
    labels = np.concatenate([dataset.load(i)[1].ravel() for i in range(2)])
    labels = labels[labels != 255]
    assert matrix.scores().pixel_accuracy == pytest.approx(float((labels == 0).mean()))


@pytest.mark.slow
def test_train_export_and_evaluate_cli(toy, tmp_path, capsys):
    config = merge(DEFAULTS, {
        'dataset': toy, 'output_dir': str(tmp_path / 'run'),
        'train': {'iterations': 2, 'batch_size': 2, 'crop': [48, 64], 'threads': 1,
                  'warmup_iterations': 1, 'lr': 0.01},
        'val': {'every': 0}, 'log': {'tensorboard': False, 'progress': 'log'}})
    final = Trainer(config, command='test').fit()
    meta = load_model(final).checkpoint_info.meta
    assert meta['iterations'] == 2 and meta['command'] == 'test'
    assert meta['val_miou'] is not None and 0 <= meta['val_miou'] <= 1

    curve = plot_training_curve(tmp_path / 'run', tmp_path / 'curve.png')
    assert curve.read_bytes()[:4] == b'\x89PNG'

    exported = tmp_path / 'exported.pt'
    assert export_tool.main([str(tmp_path / 'run' / 'last.pt'), str(exported),
                             '--meta', 'note=hello']) == 0
    model = load_model(exported)
    assert model.label_set.class_names == tuple(c['name'] for c in TOY_LABEL_SET['classes'])
    assert model.checkpoint_info.meta['note'] == 'hello'
    assert model.checkpoint_info.meta['command'] == 'test'  # carried by the training state
    assert not model.checkpoint_info.has_aux_heads
    for a, b in zip(model.state_dict().values(), load_model(final).state_dict().values()):
        assert torch.equal(a, b)

    out = tmp_path / 'eval'
    assert evaluate_tool.main([str(exported), '--multi-scale', '--ms-scales', '0.75', '1.0',
                               '--output-dir', str(out)]) == 0
    report = json.loads((out / 'metrics.json').read_text())
    assert report['images'] == 3 and len(report['results']) == 2
    single, multi = report['results'].values()
    assert single['miou'] == pytest.approx(meta['val_miou'], abs=1e-9)
    assert multi['flip'] is True and multi['scales'] == [0.75, 1.0]
    assert set(single['iou']) == {'background', 'box', 'disc'}
    assert (out / 'class_iou.png').read_bytes()[:4] == b'\x89PNG'
    assert 'mIoU' in capsys.readouterr().out

    # A training state evaluates like its export.
    assert evaluate_tool.main([str(tmp_path / 'run' / 'last.pt'), '--output-dir',
                               str(tmp_path / 'eval2')]) == 0
    again = json.loads((tmp_path / 'eval2' / 'metrics.json').read_text())
    assert list(again['results'].values())[0]['miou'] == pytest.approx(single['miou'])


def test_evaluate_reports_bad_checkpoint(tmp_path):
    bad = tmp_path / 'bad.pt'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='bad.pt'):
        evaluate_tool.main([str(bad)])
    assert load_label_set('camvid').num_classes == 11
