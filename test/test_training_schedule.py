"""Warm-up + poly learning rate (a pure function of the iteration) and parameter groups."""

import pytest
import torch

from bisenet_ros.model.factory import build_model
from bisenet_ros.training.schedule import apply_lr, lr_factor, parameter_groups


def test_linear_warmup_then_poly():
    kw = dict(warmup_iterations=10, warmup_ratio=0.1, power=0.9)
    assert lr_factor(0, 110, **kw) == pytest.approx(0.1)
    assert lr_factor(5, 110, **kw) == pytest.approx(0.55)
    assert lr_factor(10, 110, **kw) == pytest.approx(1.0)
    assert lr_factor(60, 110, **kw) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(110, 110, **kw) == 0.0
    assert lr_factor(500, 110, **kw) == 0.0


def test_without_warmup_and_monotonic_decay():
    values = [lr_factor(i, 50, power=1.0) for i in range(51)]
    assert values[0] == 1.0 and values[25] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError):
        lr_factor(0, 0)


def test_parameter_groups_decay_only_conv_weights_and_boost_heads():
    model = build_model('bisenetv2', 4, aux_heads=True)
    groups = {g['name']: g for g in parameter_groups(model, 5e-4, 10.0)}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups.values():
        for p in group['params']:
            name = names[id(p)]
            top = name.split('.')[0]
            assert (group['lr_mult'] == 10.0) == (top in {'head', 'aux2', 'aux3', 'aux4',
                                                          'aux5_4'}), name
            assert (group['weight_decay'] > 0) == (p.dim() == 4), name
    assert sum(len(g['params']) for g in groups.values()) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(list(groups.values()), lr=0.1, momentum=0.9)
    assert apply_lr(optimizer, 0.05, 0.5) == pytest.approx(0.025)
    lrs = {g['name']: g['lr'] for g in optimizer.param_groups}
    assert lrs['wd'] == pytest.approx(0.025) and lrs['head_nowd'] == pytest.approx(0.25)
