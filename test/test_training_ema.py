"""Weight EMA: the rate schedule, the average of parameters and BatchNorm statistics, and its
state round trip."""

import pytest
import torch

from bisenet_ros.training.ema import WeightEma


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))


def test_rate_rises_to_the_decay():
    ema = WeightEma(_model(), 0.99)
    rates = []
    for n in range(1000):
        ema.updates = n
        rates.append(ema.rate())
    assert rates[0] == pytest.approx(1 / 10) and rates[1] == pytest.approx(2 / 11)
    assert all(a <= b for a, b in zip(rates, rates[1:])) and rates[-1] == 0.99


def test_update_blends_floats_and_copies_integers():
    model = _model()
    ema = WeightEma(model, 0.9)
    start = {k: v.clone() for k, v in ema.model.state_dict().items()}
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    model.train()
    model(torch.randn(2, 3, 8, 8))  # BatchNorm statistics and num_batches_tracked move
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)  # rate 0.1: 10 % old, 90 % new
    now, new = ema.model.state_dict(), model.state_dict()
    for key in ('0.weight', '1.running_mean', '1.running_var'):
        assert torch.allclose(now[key], 0.1 * start[key] + 0.9 * new[key], atol=1e-6), key
    assert now['1.num_batches_tracked'].item() == 1
    assert ema.updates == 1
    assert not torch.equal(model[0].weight, now['0.weight'])  # the trained model is untouched


def test_state_round_trip_continues_the_same_average():
    model = _model()
    ema = WeightEma(model, 0.95)
    for _ in range(3):
        with torch.no_grad():
            model[0].weight.mul_(1.1)
        ema.update(model)
    restored = WeightEma(_model(), 0.95)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 3 and restored.rate() == ema.rate()
    ema.update(model)
    restored.update(model)
    for key, value in ema.model.state_dict().items():
        assert torch.equal(value, restored.model.state_dict()[key]), key


@pytest.mark.parametrize('decay', [0, 1, 1.5, -0.1])
def test_decay_must_be_between_0_and_1(decay):
    with pytest.raises(ValueError, match=r'EMA decay must be in \(0, 1\)'):
        WeightEma(_model(), decay)
