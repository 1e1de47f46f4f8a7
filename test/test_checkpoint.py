"""Checkpoint loading: reference and project formats, safety, and clear errors."""

import pickle

import numpy as np
import pytest
import torch

import bisenet_ros
from bisenet_ros.labels import load_label_set
from bisenet_ros.model import (build_model, CheckpointError, CheckpointNotFoundError,
                               read_checkpoint, save_checkpoint)


@pytest.fixture(scope='module')
def reference_state(reference_fixture):
    return torch.load(reference_fixture / 'city19_seed0.pth', weights_only=True)


class _WritesFileWhenUnpickled:
    """Unpickling this calls open(path, 'w'), i.e. it runs code and creates a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_load_model_reference_checkpoint_reproduces_logits(reference_fixture):
    model = bisenet_ros.load_model(reference_fixture / 'city19_seed0.pth')
    assert not model.training
    assert model.aux_names == ()
    assert model.label_set.name == 'cityscapes' and model.label_set.num_classes == 19
    x = torch.from_numpy(np.load(reference_fixture / 'input_256x512.npy'))
    with torch.no_grad():
        logits = model(x).numpy()
    ref = np.load(reference_fixture / 'logits_eval.npy')
    assert np.abs(logits - ref).max() <= 2e-4 * np.abs(ref).max() + 1e-4


@pytest.mark.parametrize('wrap', ['plain_no_aux', 'state_dict', 'module_prefix'])
def test_reference_layout_variants_load(tmp_path, reference_state, wrap):
    state = {k: v for k, v in reference_state.items() if not k.startswith('aux')}
    if wrap == 'state_dict':
        state = {'state_dict': state}
    elif wrap == 'module_prefix':
        state = {'module.' + k: v for k, v in state.items()}
    path = tmp_path / 'ckpt.pth'
    torch.save(state, path)
    sd, info = read_checkpoint(path)
    assert info.format == 'reference' and info.num_classes == 19
    assert info.has_aux_heads is False
    model = bisenet_ros.load_model(path)
    assert torch.equal(model.head.conv_out[1].weight, reference_state['head.conv_out.1.weight'])


def test_num_classes_inferred_from_classifier(tmp_path):
    model = build_model('bisenetv2', 7)
    torch.save(model.state_dict(), tmp_path / 'seven.pth')
    loaded = bisenet_ros.load_model(tmp_path / 'seven.pth')
    assert loaded.num_classes == 7 and loaded.label_set.num_classes == 7


def test_large_variant_inferred_from_shapes(tmp_path):
    torch.save(build_model('bisenetv2_large', 3).state_dict(), tmp_path / 'large.pth')
    _, info = read_checkpoint(tmp_path / 'large.pth')
    assert info.variant == 'bisenetv2_large'


def test_with_aux_keeps_booster_heads(reference_fixture):
    model = bisenet_ros.load_model(reference_fixture / 'city19_seed0.pth', with_aux=True)
    with torch.no_grad():
        outputs = model.forward_with_aux(torch.zeros(1, 3, 64, 64))
    assert len(outputs) == 5


def test_with_aux_on_checkpoint_without_heads_names_file(tmp_path):
    path = tmp_path / 'noaux.pth'
    torch.save(build_model('bisenetv2', 3).state_dict(), path)
    with pytest.raises(CheckpointError, match='noaux.pth.*no booster-head'):
        bisenet_ros.load_model(path, with_aux=True)


def test_project_checkpoint_round_trip_keeps_metadata_and_weights(tmp_path):
    camvid = load_label_set('camvid')
    model = build_model('bisenetv2', camvid.num_classes, aux_heads=True).eval()
    path = save_checkpoint(tmp_path / 'sub' / 'camvid.pt', model, camvid, input_size=(352, 480),
                           meta={'val_miou': 0.5, 'command': 'bisenet train'})
    state, info = read_checkpoint(path)
    assert info.format == 'project' and info.variant == 'bisenetv2'
    assert info.label_set == camvid and info.input_size == (352, 480)
    assert info.meta == {'val_miou': 0.5, 'command': 'bisenet train'}
    assert not any(k.startswith('aux') for k in state)
    loaded = bisenet_ros.load_model(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not list(tmp_path.glob('sub/*.tmp'))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match='nope.pth: no such file'):
        bisenet_ros.load_model(tmp_path / 'nope.pth')


def test_truncated_file_is_named(tmp_path, reference_fixture):
    data = (reference_fixture / 'city19_seed0.pth').read_bytes()
    path = tmp_path / 'truncated.pth'
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated.pth: not a readable PyTorch file'):
        bisenet_ros.load_model(path)


def test_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('this is not a checkpoint\n')
    with pytest.raises(CheckpointError, match='notes.pth'):
        bisenet_ros.load_model(path)


def test_unknown_key_layout_is_explained(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 64)}, path)
    with pytest.raises(CheckpointError, match=r'resnet.pth: unknown key layout.*conv1.weight'):
        bisenet_ros.load_model(path)


def test_missing_layer_weights_are_listed(tmp_path):
    state = build_model('bisenetv2', 3).state_dict()
    del state['bga.conv.0.weight']
    torch.save(state, tmp_path / 'partial.pth')
    with pytest.raises(CheckpointError, match=r"partial.pth.*1 missing keys.*bga.conv.0.weight"):
        bisenet_ros.load_model(tmp_path / 'partial.pth')


def test_label_set_with_other_class_count_is_rejected(reference_fixture):
    with pytest.raises(CheckpointError, match=r'city19_seed0.pth.*19 classes.*camvid.*11'):
        bisenet_ros.load_model(reference_fixture / 'city19_seed0.pth', label_set='camvid')


@pytest.mark.parametrize('writer', ['torch_save', 'raw_pickle'])
def test_malicious_pickle_is_refused_without_running(tmp_path, writer):
    marker = tmp_path / 'pwned.txt'
    payload = {'head.conv_out.1.weight': torch.zeros(1), 'evil': _WritesFileWhenUnpickled(marker)}
    path = tmp_path / 'evil.pth'
    if writer == 'torch_save':
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f)
    marker.unlink(missing_ok=True)  # nothing ran while writing; make sure before loading
    with pytest.raises(CheckpointError, match='evil.pth'):
        bisenet_ros.load_model(path)
    assert not marker.exists()
