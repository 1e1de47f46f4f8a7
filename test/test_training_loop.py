"""The training loop on tiny synthetic data: the loss falls, a handful of frames is overfitted,
and a resumed run continues exactly like an uninterrupted one."""

import csv

import numpy as np
import pytest
import torch

from bisenet_ros.training.config import ConfigError, DEFAULTS, merge
from bisenet_ros.training.sampler import IterationBatchSampler
from bisenet_ros.training.state import load_train_state
from bisenet_ros.training.synthetic import write_toy_dataset
from bisenet_ros.training.trainer import Trainer

OVERFIT_ITERATIONS = 60


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp('toy'), train=4, val=2, size=(32, 48))


def _config(toy, out, **train):
    settings = {'iterations': 6, 'batch_size': 4, 'crop': None, 'scale_range': [1.0, 1.0],
                'brightness': 0.0, 'contrast': 0.0, 'saturation': 0.0, 'lr': 0.01,
                'warmup_iterations': 2, 'threads': 1}
    settings.update(train)
    return merge(DEFAULTS, {'dataset': toy, 'train': settings, 'val': {'every': 0},
                            'log': {'tensorboard': False, 'progress': 'log',
                                    'checkpoint_every': 1000},
                            'output_dir': str(out)})


def _losses(run_dir):
    with (run_dir / 'train_log.csv').open() as handle:
        return [float(row['loss']) for row in csv.DictReader(handle)]


def test_a_few_iterations_lower_the_loss_on_a_fixed_batch(toy, tmp_path):
    # batch = the whole train set, no augmentation: every iteration sees the same 4 frames
    Trainer(_config(toy, tmp_path / 'run', iterations=8, hflip=0.0, lr=0.002,
                    warmup_iterations=0)).fit()
    losses = _losses(tmp_path / 'run')
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.9 * losses[0], losses


@pytest.mark.slow
def test_overfitting_a_handful_of_frames_reaches_a_high_miou(toy, tmp_path):
    toy = dict(toy, val_images=toy['train_images'], val_labels=toy['train_labels'])
    trainer = Trainer(_config(toy, tmp_path / 'run', iterations=OVERFIT_ITERATIONS, lr=0.01,
                              hflip=0.5, warmup_iterations=5))
    trainer.fit()
    assert trainer.last_miou > 0.7, trainer.last_miou  # 3 classes: chance is ~0.2


@pytest.mark.slow
def test_resume_continues_exactly(toy, tmp_path):
    config = _config(toy, tmp_path / 'full', iterations=4, hflip=0.5, brightness=0.3,
                     batch_size=2)
    full = Trainer(config)
    full.fit()
    reference = {k: v.clone() for k, v in full.model.state_dict().items()}

    interrupted = _config(toy, tmp_path / 'parts', iterations=4, hflip=0.5, brightness=0.3,
                          batch_size=2)
    assert Trainer(interrupted).fit(stop_after=2) is None
    state = load_train_state(tmp_path / 'parts' / 'last.pt')
    assert state['iteration'] == 2 and state['optimizer']['state']  # momentum buffers saved
    resumed = Trainer(interrupted, resume=str(tmp_path / 'parts' / 'last.pt'))
    assert resumed.iteration == 2
    resumed.fit()

    assert _losses(tmp_path / 'parts') == _losses(tmp_path / 'full')
    for key, value in resumed.model.state_dict().items():
        assert torch.allclose(value.float(), reference[key].float(), atol=1e-6), key


def test_data_order_is_a_function_of_seed_and_iteration_and_splits_across_ranks():
    single = IterationBatchSampler(10, 4, seed=3, stop=6)
    batches = list(single)
    assert len(batches) == 6 and all(len(b) == 4 for b in batches)
    epoch0 = [k[0] for b in batches[:2] for k in b]
    assert len(set(epoch0)) == 8  # no repeats within an epoch (2 batches of 4 out of 10)
    assert list(IterationBatchSampler(10, 4, seed=3, start=4, stop=6)) == batches[4:]
    assert batches[2] != list(IterationBatchSampler(10, 4, seed=4, stop=6))[2]
    ranks = [list(IterationBatchSampler(10, 4, seed=3, stop=6, rank=r, world_size=2))
             for r in range(2)]
    for i, batch in enumerate(batches):
        assert sorted(ranks[0][i] + ranks[1][i]) == sorted(batch)
    with pytest.raises(ValueError, match='divisible'):
        IterationBatchSampler(10, 3, stop=1, world_size=2)
    with pytest.raises(ValueError, match='fewer than one global batch'):
        IterationBatchSampler(3, 4, stop=1)


def test_cpu_bf16_autocast_step(toy, tmp_path):
    trainer = Trainer(_config(toy, tmp_path / 'run', iterations=1, batch_size=2, cpu_bf16=True))
    images = torch.randn(2, 3, 32, 32)
    labels = torch.randint(0, 3, (2, 32, 32))
    losses = trainer.step(images, labels)
    assert trainer.bf16 and all(v == v and v > 0 for v in losses)


def test_enet_class_weights_come_from_the_train_labels(toy, tmp_path):
    trainer = Trainer(_config(toy, tmp_path / 'run', iterations=1, batch_size=2,
                              class_weights='enet'))
    n = trainer.label_set.num_classes
    labels = np.concatenate([trainer.train_set.load(i)[1].ravel()
                             for i in range(len(trainer.train_set))])
    counts = np.bincount(labels[labels < n], minlength=n)
    expected = 1.0 / np.log(1.02 + counts / counts.sum())
    assert trainer.criterion.class_weights.numpy() == pytest.approx(expected, rel=1e-5)
    losses = trainer.step(torch.randn(2, 3, 32, 32), torch.randint(0, n, (2, 32, 32)))
    assert all(v == v and v > 0 for v in losses)
    with pytest.raises(ConfigError, match=f'has 2 entries, the label set .* has {n} classes'):
        Trainer(_config(toy, tmp_path / 'run2', iterations=1, class_weights=[1.0, 2.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_cuda_amp_step(toy, tmp_path):
    trainer = Trainer(_config(toy, tmp_path / 'run', iterations=1, batch_size=2, device='cuda'))
    losses = trainer.step(torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64)))
    assert trainer.amp and all(v == v and v > 0 for v in losses)


def test_fine_tuning_starts_from_a_checkpoint_with_another_class_count(toy, tmp_path):
    from bisenet_ros.labels import load_label_set
    from bisenet_ros.model.checkpoint import save_checkpoint
    from bisenet_ros.model.factory import build_model
    torch.manual_seed(123)
    source = build_model('bisenetv2', 11)
    save_checkpoint(tmp_path / 'camvid.pt', source, load_label_set('camvid'))
    config = _config(toy, tmp_path / 'run')
    config['model']['init'] = str(tmp_path / 'camvid.pt')
    model = Trainer(config).model
    own, theirs = model.state_dict(), source.state_dict()
    assert torch.equal(own['detail.S1.0.conv.weight'], theirs['detail.S1.0.conv.weight'])
    assert own['head.conv_out.1.weight'].shape[0] == 3  # toy classifier, fresh


@pytest.mark.slow
def test_continue_from_resumes_a_state_else_warm_starts_from_the_packaged_model(toy, tmp_path):
    from bisenet_ros.model.checkpoint import read_checkpoint
    from bisenet_ros.tools.train import continue_point
    from bisenet_ros.training.checkpoint_export import export_train_state
    from bisenet_ros.training.schedule import lr_factor
    config = _config(toy, tmp_path / 'run', iterations=4, batch_size=2)
    Trainer(config).fit(stop_after=2)
    packaged = export_train_state(tmp_path / 'run' / 'last.pt', tmp_path / 'model.pt')
    other = export_train_state(tmp_path / 'run' / 'last.pt', tmp_path / 'other.pt')
    # the machine kept the state: resume exactly
    assert continue_point(config, str(packaged)) == (str(tmp_path / 'run' / 'last.pt'), None)
    # the state is gone: warm start from the model this run packaged, at its iteration
    (tmp_path / 'run' / 'last.pt').unlink()
    assert continue_point(config, str(packaged)) == (None, str(packaged))
    elsewhere = dict(config, output_dir=str(tmp_path / 'another_run'))
    assert continue_point(elsewhere, str(other)) == (None, None)
    trainer = Trainer(config, warm_start=str(packaged))
    assert trainer.iteration == 2
    weights, _ = read_checkpoint(packaged)
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    assert not trainer.optimizer.state  # rebuilt: no momentum yet
    trainer.fit()
    with (tmp_path / 'run' / 'train_log.csv').open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r['iteration']) for r in rows] == [1, 2, 3, 4]
    t = config['train']
    expected = t['lr'] * lr_factor(2, 4, warmup_iterations=t['warmup_iterations'],
                                   warmup_ratio=t['warmup_ratio'], power=t['poly_power'])
    assert float(rows[2]['lr']) == pytest.approx(expected)
    final, info = read_checkpoint(tmp_path / 'run' / 'final.pt')
    assert info.meta['iterations'] == 4


@pytest.mark.slow
def test_a_model_from_a_branch_warm_starts_its_parent_run_at_the_branch_point(toy, tmp_path):
    from bisenet_ros.tools.train import continue_point
    from bisenet_ros.training.checkpoint_export import export_train_state
    parent = _config(toy, tmp_path / 'long', iterations=6, batch_size=2)
    Trainer(parent).fit(stop_after=2)
    branch = dict(parent, output_dir=str(tmp_path / 'anneal'),
                  train=dict(parent['train'], iterations=4))
    (tmp_path / 'anneal').mkdir()
    Trainer(branch, resume=str(tmp_path / 'long' / 'last.pt')).fit()
    branch_point = {'output_dir': parent['output_dir'], 'planned_iterations': 6, 'iteration': 2}
    packaged = export_train_state(tmp_path / 'anneal' / 'last.pt', tmp_path / 'model.pt',
                                  extra={'branched_from': branch_point})
    (tmp_path / 'long' / 'last.pt').unlink()
    assert continue_point(parent, str(packaged)) == (None, str(packaged))
    assert Trainer(parent, warm_start=str(packaged)).iteration == 2  # not the branch's 4
    unrelated = dict(parent, output_dir=str(tmp_path / 'other'))
    assert continue_point(unrelated, str(packaged)) == (None, None)


def test_warm_start_refuses_a_checkpoint_past_the_end_of_the_run(toy, tmp_path):
    from bisenet_ros.training.checkpoint_export import export_train_state
    Trainer(_config(toy, tmp_path / 'run', iterations=3, batch_size=2)).fit(stop_after=3)
    packaged = export_train_state(tmp_path / 'run' / 'last.pt', tmp_path / 'model.pt')
    with pytest.raises(ValueError, match=r'iterations=3.*\[0, 3\)'):
        Trainer(_config(toy, tmp_path / 'run2', iterations=3, batch_size=2),
                warm_start=str(packaged))


def _miou_of(evaluate_args, out):
    import json
    from bisenet_ros.tools import evaluate as evaluate_tool
    assert evaluate_tool.main(evaluate_args + ['--output-dir', str(out)]) == 0
    report = json.loads((out / 'metrics.json').read_text())
    return report, list(report['results'].values())[0]['miou']


@pytest.mark.slow
def test_held_out_sequence_run_with_ema_and_strong_photometric_resumes_exactly(toy, tmp_path):
    from bisenet_ros.model.checkpoint import read_checkpoint
    # toy frames are named 000, 001, ... in train and in val: "001" is a sequence of 2 frames
    data = dict(toy, train_split=['train', 'val'], holdout_sequences=['001'],
                val_split='holdout')

    def config(out):
        return _config(data, out, iterations=4, batch_size=2, hflip=0.5, brightness=0.3,
                       photometric='strong', ema_decay=0.9)

    full = Trainer(config(tmp_path / 'full'))
    assert full.train_set.sequences() == {'000': 2, '002': 1, '003': 1}
    assert full.val_set.sequences() == {'001': 2}
    final = full.fit()
    weights, info = read_checkpoint(final)
    averaged, trained = full.ema.model.state_dict(), full.model.state_dict()
    assert all(torch.equal(v, averaged[k]) for k, v in weights.items())  # final.pt = the EMA
    assert not all(torch.equal(v, trained[k]) for k, v in weights.items())
    assert info.meta['val_miou'] == pytest.approx(full.last_miou)

    parts = config(tmp_path / 'parts')
    assert Trainer(parts).fit(stop_after=2) is None
    state = load_train_state(tmp_path / 'parts' / 'last.pt')
    assert state['ema']['updates'] == 2
    resumed = Trainer(parts, resume=str(tmp_path / 'parts' / 'last.pt'))
    assert resumed.ema.updates == 2
    resumed.fit()
    assert _losses(tmp_path / 'parts') == _losses(tmp_path / 'full')
    for key, value in resumed.ema.model.state_dict().items():
        assert torch.allclose(value.float(), averaged[key].float(), atol=1e-6), key

    # bisenet evaluate scores the held-out frames: the config's (holdout) or named ones
    report, miou = _miou_of([str(final), '--split', 'holdout'], tmp_path / 'e1')
    assert report['images'] == 2 and miou == pytest.approx(full.last_miou, abs=1e-9)
    assert 'holdout 001' in report['dataset']
    assert _miou_of([str(final), '--split', 'holdout:001'], tmp_path / 'e2')[1] == \
        pytest.approx(miou, abs=1e-9)
    # a training state evaluates its weight average, as validation did
    assert _miou_of([str(tmp_path / 'full' / 'last.pt'), '--split', 'holdout'],
                    tmp_path / 'e3')[1] == pytest.approx(miou, abs=1e-9)


def test_ema_on_resuming_a_state_without_one_starts_from_its_weights(toy, tmp_path):
    Trainer(_config(toy, tmp_path / 'run', iterations=3, batch_size=2)).fit(stop_after=1)
    state = str(tmp_path / 'run' / 'last.pt')
    assert 'ema' not in load_train_state(state)
    trainer = Trainer(_config(toy, tmp_path / 'run', iterations=3, batch_size=2,
                              ema_decay=0.99), resume=state)
    assert trainer.ema.updates == 0
    assert all(torch.equal(v, trainer.model.state_dict()[k])
               for k, v in trainer.ema.model.state_dict().items())


def test_pause_after_a_wall_time_leaves_like_an_interrupted_run(toy, tmp_path):
    # a budget of 0 minutes is spent after the first iteration: last.pt only, no validation
    config = _config(toy, tmp_path / 'run', iterations=3, batch_size=2)
    config['val']['every'] = 2  # the schedule's validations only: none at 1
    assert Trainer(config).fit(pause_after_min=0.0) is None
    assert load_train_state(tmp_path / 'run' / 'last.pt')['iteration'] == 1
    assert not (tmp_path / 'run' / 'final.pt').exists()
    assert not (tmp_path / 'run' / 'val_log.csv').exists()
    # at the run's last iteration the budget does not pause it: it ends as usual
    resumed = Trainer(dict(config, train=dict(config['train'], iterations=2)),
                      resume=str(tmp_path / 'run' / 'last.pt'))
    assert resumed.fit(pause_after_min=0.0) == tmp_path / 'run' / 'final.pt'
    assert load_train_state(tmp_path / 'run' / 'last.pt')['iteration'] == 2
