"""BiSeNetV2 architecture: reference parity, any input size, booster heads, variants."""

import json

import numpy as np
import pytest
import torch

from bisenet_ros.model import build_model, SizePolicy
from bisenet_ros.model.bisenetv2 import BiSeNetV2, BiSeNetV2Config, bilinear_upsample

AUX_ORDER = ('main', 'aux2', 'aux3', 'aux4', 'aux5_4')


def _within_tolerance(ours: np.ndarray, ref: np.ndarray) -> bool:
    """The fixture README's bound: max|a-b| <= 2e-4 * max|ref| + 1e-4."""
    return float(np.abs(ours - ref).max()) <= 2e-4 * float(np.abs(ref).max()) + 1e-4


@pytest.fixture(scope='module')
def reference_model_with_aux(reference_fixture):
    state = torch.load(reference_fixture / 'city19_seed0.pth', weights_only=True)
    model = BiSeNetV2(BiSeNetV2Config(num_classes=19, aux_heads=True))
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope='module')
def reference_input(reference_fixture):
    return torch.from_numpy(np.load(reference_fixture / 'input_256x512.npy'))


def test_state_dict_layout_matches_reference_keys(reference_fixture):
    keys = json.loads((reference_fixture / 'keys.json').read_text())
    ours = build_model('bisenetv2', 19, aux_heads=True).state_dict()
    assert [(k, list(v.shape)) for k, v in ours.items()] == [(k, s) for k, s, _ in keys]


def test_main_and_aux_outputs_match_reference(reference_fixture, reference_model_with_aux,
                                              reference_input):
    with torch.no_grad():
        outputs = reference_model_with_aux.forward_with_aux(reference_input)
    expected_main = np.load(reference_fixture / 'logits_eval.npy')
    assert outputs[0].shape == (1, 19, 256, 512)
    assert _within_tolerance(outputs[0].numpy(), expected_main)
    strided = np.load(reference_fixture / 'aux_logits_stride4.npz')
    assert list(strided.keys()) == list(AUX_ORDER)
    for name, output in zip(AUX_ORDER, outputs):
        assert _within_tolerance(output.numpy()[:, :, ::4, ::4], strided[name]), name


def test_eval_forward_runs_no_booster_heads(reference_model_with_aux, reference_input):
    calls = []
    hooks = [getattr(reference_model_with_aux, name).register_forward_hook(
        lambda *_: calls.append(1)) for name in AUX_ORDER[1:]]
    try:
        with torch.no_grad():
            logits = reference_model_with_aux(reference_input)
    finally:
        for hook in hooks:
            hook.remove()
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 19, 256, 512)
    assert calls == []


def test_training_forward_returns_all_heads_at_input_size():
    model = build_model('bisenetv2', 5, aux_heads=True).train()
    outputs = model(torch.randn(2, 3, 64, 96))
    assert len(outputs) == 5
    assert all(o.shape == (2, 5, 64, 96) for o in outputs)


@pytest.mark.parametrize('factor', [2, 4, 8, 16])
def test_matmul_upsample_gives_interpolate_values_and_gradients(factor):
    x = torch.randn(2, 11, 6, 8, requires_grad=True)
    expected = torch.nn.functional.interpolate(x, scale_factor=factor, mode='bilinear',
                                               align_corners=False)
    got = bilinear_upsample(x, factor)
    assert got.shape == expected.shape and got.dtype == torch.float32 and got.is_contiguous()
    assert torch.allclose(got, expected, atol=1e-5)
    grad = torch.randn_like(expected)
    (want,) = torch.autograd.grad(expected, x, grad)
    (have,) = torch.autograd.grad(got, x, grad)
    assert torch.allclose(have, want, atol=1e-4)


def test_matmul_upsample_under_bf16_autocast_returns_float32_of_the_bf16_logits():
    x = torch.randn(1, 3, 5, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = bilinear_upsample(x, 8)
    expected = torch.nn.functional.interpolate(x.float(), scale_factor=8, mode='bilinear',
                                               align_corners=False)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-5)


def test_matmul_upsample_changes_training_outputs_only_by_rounding(monkeypatch):
    model = build_model('bisenetv2', 5, aux_heads=True).train()
    x = torch.randn(2, 3, 64, 96)
    torch.manual_seed(0)
    plain = model(x)
    model.use_matmul_upsample(True)
    torch.manual_seed(0)  # the same dropout masks
    fast = model(x)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(plain, fast))
    calls = []
    interpolate = torch.nn.functional.interpolate
    monkeypatch.setattr(torch.nn.functional, 'interpolate',
                        lambda *a, **k: calls.append(k.get('mode')) or interpolate(*a, **k))
    model(x)
    assert 'bilinear' not in calls, 'train mode upsamples the heads by matmul'
    model.eval()(x)
    assert 'bilinear' in calls, 'eval mode (what exports trace) keeps F.interpolate'


def test_parameter_counts_match_paper_implementation():
    for n in (11, 19):
        plain = build_model('bisenetv2', n)
        boosted = build_model('bisenetv2', n, aux_heads=True)
        assert sum(p.numel() for p in plain.parameters()) == 3_339_152 + 1025 * n
        assert sum(p.numel() for p in boosted.parameters()) == 5_186_096 + 2389 * n


@pytest.mark.parametrize('size', [pytest.param((360, 480), marks=pytest.mark.slow),
                                  pytest.param((720, 1280), marks=pytest.mark.slow),
                                  (97, 131), (1, 1), (33, 64)])
@pytest.mark.parametrize('policy', ['pad', 'resize'])
def test_any_input_size_returns_logits_at_input_size(size, policy):
    model = build_model('bisenetv2', 4, size_policy=policy).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *size))
    assert logits.shape == (1, 4, *size)
    assert torch.isfinite(logits).all()


def test_pad_policy_keeps_pixels_of_a_divisible_crop(reference_fixture):
    """Padding never changes the image scale: a 256x512 input padded from 250x500 agrees with
    the unpadded run in the interior (away from the padded border)."""
    model = build_model('bisenetv2', 19)
    model.load_state_dict({k: v for k, v in torch.load(
        reference_fixture / 'city19_seed0.pth', weights_only=True).items()
        if not k.startswith('aux')})
    model.eval()
    x = torch.from_numpy(np.load(reference_fixture / 'input_256x512.npy'))
    with torch.no_grad():
        full = model(x)
        cropped = model(x[:, :, :250, :500])
    agree = (full[:, :, :128, :256].argmax(1) == cropped[:, :, :128, :256].argmax(1))
    assert agree.float().mean() > 0.95


def test_strict_policy_rejects_sizes_not_divisible_by_32():
    model = build_model('bisenetv2', 3, size_policy=SizePolicy.STRICT).eval()
    with pytest.raises(ValueError, match='not a multiple of 32'):
        model(torch.randn(1, 3, 100, 96))


def test_rejects_wrong_channel_count():
    model = build_model('bisenetv2', 3).eval()
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        model(torch.randn(1, 4, 64, 64))


def test_large_variant_is_wider_and_deeper():
    base = build_model('bisenetv2', 19)
    large = build_model('bisenetv2_large', 19)
    assert large.detail.out_channels == 2 * base.detail.out_channels
    assert len(large.segment.S5_4) == 1 + 3 * (len(base.segment.S5_4) - 1)
    with torch.no_grad():
        assert large.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 19, 64, 64)


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="unknown model variant 'bisenetv3'"):
        build_model('bisenetv3', 19)
