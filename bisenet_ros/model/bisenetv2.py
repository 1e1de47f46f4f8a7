"""BiSeNet V2 (Yu et al., 2020): detail branch, semantic branch, guided aggregation, booster heads.

Module names and state_dict keys follow the most used public implementation
(CoinCheung/BiSeNet, ``lib/models/bisenetv2.py``), so its released checkpoints load directly.
The numerics match it too: nearest upsampling inside the aggregation layer and for the booster
heads' first x2, bilinear (``align_corners=False``) for every final upsample, BN eps 1e-5.

Two things differ from the reference, both by design:

* any input size works: H and W that are not multiples of 32 are padded (or resized) on the way
  in and the logits are cropped (or resized) back, see :class:`SizePolicy`;
* the booster heads only run in training mode (or through :meth:`BiSeNetV2.forward_with_aux`),
  so an inference model or an ONNX export never pays for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import functools
from typing import List, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F

#: Every spatial size must be a multiple of this for the semantic branch and the BGA layer.
OUTPUT_STRIDE = 32


class SizePolicy(str, Enum):
    """How :class:`BiSeNetV2` treats an input whose H or W is not a multiple of 32.

    ``PAD`` pads bottom/right with zeros (the dataset mean colour once normalised) and crops the
    logits; pixels keep their exact scale. ``RESIZE`` resizes bilinearly to the nearest multiple
    of 32 and resizes the logits back; cheaper for sizes just above a multiple of 32.
    ``STRICT`` raises a :class:`ValueError` instead.
    """

    PAD = 'pad'
    RESIZE = 'resize'
    STRICT = 'strict'


@dataclass(frozen=True)
class BiSeNetV2Config:
    """Architecture hyper-parameters.

    Attributes:
        num_classes: Output channels of every head.
        width: Paper's alpha, multiplies every channel count (1.0 = BiSeNetV2).
        depth: Paper's d, multiplies the number of stride-1 GE layers in each semantic stage.
        aux_heads: Build the four booster heads (needed for training, ignored by inference).
        head_channels: Mid channels of the main segmentation head (1024 in the reference).
        size_policy: See :class:`SizePolicy`.
    """

    num_classes: int = 19
    width: float = 1.0
    depth: float = 1.0
    aux_heads: bool = False
    head_channels: int = 1024
    size_policy: SizePolicy = SizePolicy.PAD


class ConvBNReLU(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> optional ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             relu: bool = False) -> List[nn.Module]:
    """Layers [conv, bn(, relu)] for the Sequential blocks whose keys are ``N.weight``."""
    layers: List[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class DetailBranch(nn.Module):
    """Wide and shallow: three stages of 3x3 ConvBNReLU, output ``(N, 128*width, H/8, W/8)``."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c64, c128 = _scaled(64, width), _scaled(128, width)
        self.S1 = nn.Sequential(ConvBNReLU(3, c64, stride=2), ConvBNReLU(c64, c64))
        self.S2 = nn.Sequential(ConvBNReLU(c64, c64, stride=2), ConvBNReLU(c64, c64),
                                ConvBNReLU(c64, c64))
        self.S3 = nn.Sequential(ConvBNReLU(c64, c128, stride=2), ConvBNReLU(c128, c128),
                                ConvBNReLU(c128, c128))
        self.out_channels = c128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.S3(self.S2(self.S1(x)))


class StemBlock(nn.Module):
    """Stem of the semantic branch: conv s2, then (1x1 + 3x3 s2) beside maxpool s2, fused; 1/4."""

    def __init__(self, out_ch: int = 16) -> None:
        super().__init__()
        self.conv = ConvBNReLU(3, out_ch, stride=2)
        self.left = nn.Sequential(ConvBNReLU(out_ch, out_ch // 2, kernel=1),
                                  ConvBNReLU(out_ch // 2, out_ch, stride=2))
        self.right = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fuse = ConvBNReLU(out_ch * 2, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class ContextEmbedding(nn.Module):
    """CE block: global average pool -> BN -> 1x1 ConvBNReLU, broadcast-added, then 3x3."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNReLU(channels, channels, kernel=1)
        self.conv_last = ConvBNReLU(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.conv_gap(self.bn(torch.mean(x, dim=(2, 3), keepdim=True)))
        return self.conv_last(x + context)


class GatherExpandS1(nn.Module):
    """Gather-and-expansion layer, stride 1, identity shortcut (``GELayerS1``)."""

    def __init__(self, channels: int, expansion: int = 6) -> None:
        super().__init__()
        mid = channels * expansion
        self.conv1 = ConvBNReLU(channels, channels)
        self.dwconv = nn.Sequential(*_conv_bn(channels, mid, 3, groups=channels, relu=True))
        self.conv2 = nn.Sequential(*_conv_bn(mid, channels, 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.dwconv(self.conv1(x))) + x)


class GatherExpandS2(nn.Module):
    """Gather-and-expansion layer, stride 2, depthwise + pointwise shortcut (``GELayerS2``)."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int = 6) -> None:
        super().__init__()
        mid = in_ch * expansion
        self.conv1 = ConvBNReLU(in_ch, in_ch)
        self.dwconv1 = nn.Sequential(*_conv_bn(in_ch, mid, 3, stride=2, groups=in_ch))
        self.dwconv2 = nn.Sequential(*_conv_bn(mid, mid, 3, groups=mid, relu=True))
        self.conv2 = nn.Sequential(*_conv_bn(mid, out_ch, 1))
        self.shortcut = nn.Sequential(*_conv_bn(in_ch, in_ch, 3, stride=2, groups=in_ch),
                                      *_conv_bn(in_ch, out_ch, 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.conv2(self.dwconv2(self.dwconv1(self.conv1(x))))
        return self.relu(main + self.shortcut(x))


def _ge_stage(in_ch: int, out_ch: int, stride1_layers: int) -> nn.Sequential:
    return nn.Sequential(GatherExpandS2(in_ch, out_ch),
                         *[GatherExpandS1(out_ch) for _ in range(stride1_layers)])


class SemanticBranch(nn.Module):
    """Narrow and deep, fast down-sampling; returns the five features the heads need.

    Returns ``(stem 1/4, S3 1/8, S4 1/16, S5_4 1/32, S5_5 1/32)`` with
    ``16, 32, 64, 128, 128`` channels at width 1.
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        c16, c32, c64, c128 = (_scaled(c, width) for c in (16, 32, 64, 128))
        reps = [max(1, int(round(n * depth))) for n in (1, 1, 3)]
        self.S1S2 = StemBlock(c16)
        self.S3 = _ge_stage(c16, c32, reps[0])
        self.S4 = _ge_stage(c32, c64, reps[1])
        self.S5_4 = _ge_stage(c64, c128, reps[2])
        self.S5_5 = ContextEmbedding(c128)
        self.stage_channels = (c16, c32, c64, c128)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        stem = self.S1S2(x)
        s3 = self.S3(stem)
        s4 = self.S4(s3)
        s5_4 = self.S5_4(s4)
        return stem, s3, s4, s5_4, self.S5_5(s5_4)


class BilateralGuidedAggregation(nn.Module):
    """BGA layer: each branch gates the other at its own resolution; output at 1/8."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        c = channels
        self.left1 = nn.Sequential(*_conv_bn(c, c, 3, groups=c),
                                   nn.Conv2d(c, c, 1, bias=False))
        self.left2 = nn.Sequential(*_conv_bn(c, c, 3, stride=2),
                                   nn.AvgPool2d(3, stride=2, padding=1))
        self.right1 = nn.Sequential(*_conv_bn(c, c, 3))
        self.right2 = nn.Sequential(*_conv_bn(c, c, 3, groups=c),
                                    nn.Conv2d(c, c, 1, bias=False))
        self.conv = nn.Sequential(*_conv_bn(c, c, 3, relu=True))

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        up = 4  # semantic 1/32 -> detail 1/8
        detail_gated = self.left1(detail) * torch.sigmoid(
            F.interpolate(self.right1(semantic), scale_factor=up, mode='nearest'))
        semantic_gated = self.left2(detail) * torch.sigmoid(self.right2(semantic))
        return self.conv(detail_gated
                         + F.interpolate(semantic_gated, scale_factor=up, mode='nearest'))


class SegmentHead(nn.Module):
    """3x3 ConvBNReLU, dropout, (booster: nearest x2 + 3x3), 1x1 classifier, bilinear upsample.

    ``conv_out`` indices match the reference: ``0`` the optional booster block, ``1`` the
    classifier, the upsample is applied functionally (it has no parameters).

    ``matmul_upsample`` (set by :meth:`BiSeNetV2.use_matmul_upsample`): in train mode the final
    upsample is computed as two float32 matrix products (:func:`bilinear_upsample`), the same
    values as ``F.interpolate`` at a fraction of its CPU cost, mostly in the backward pass.
    Eval mode and exports always use ``F.interpolate``.
    """

    def __init__(self, in_ch: int, mid_ch: int, num_classes: int, up_factor: int,
                 booster: bool) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.drop = nn.Dropout(0.1)
        if booster:
            cls_in = up_factor * up_factor
            first: nn.Module = nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'),
                                             ConvBNReLU(mid_ch, cls_in))
            self.up_factor = up_factor // 2
        else:
            cls_in = mid_ch
            first = nn.Identity()
            self.up_factor = up_factor
        self.conv_out = nn.Sequential(first, nn.Conv2d(cls_in, num_classes, 1, bias=True))
        self.matmul_upsample = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_out(self.drop(self.conv(x)))
        if self.training and self.matmul_upsample:
            return bilinear_upsample(x, self.up_factor)
        return F.interpolate(x, scale_factor=self.up_factor, mode='bilinear',
                             align_corners=False)


@functools.lru_cache(maxsize=32)
def _bilinear_matrix(size: int, factor: int, device: torch.device) -> torch.Tensor:
    """``(size * factor, size)`` float32: row ``i`` holds the weights ``F.interpolate``
    (bilinear, ``align_corners=False``, ``scale_factor=factor``) gives the input samples for
    output sample ``i``."""
    out = torch.arange(size * factor, dtype=torch.float64)
    source = ((out + 0.5) / factor - 0.5).clamp(min=0.0)
    low = source.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = source - low
    matrix = torch.zeros(size * factor, size, dtype=torch.float64)
    rows = torch.arange(size * factor)
    matrix.index_put_((rows, low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix.to(torch.float32).to(device)


def bilinear_upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=factor, mode='bilinear', align_corners=False)`` as
    ``rows @ x @ cols^T``, in float32 outside any autocast.

    ``x``: ``(N, C, h, w)`` of any float dtype; returns ``(N, C, h * factor, w * factor)``
    float32, contiguous. On a CPU, forward plus backward of the small heads' logits takes a
    fraction of ``interpolate``'s time (its backward kernel dominates), and a float32 result
    spares the loss its own full-size cast (docs/TRAINING.md).
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    rows = _bilinear_matrix(h, factor, x.device)
    cols = _bilinear_matrix(w, factor, x.device)
    with torch.autocast(x.device.type, enabled=False):
        return torch.matmul(torch.matmul(rows, x.float()), cols.t())


#: Booster heads: name -> (index of the semantic feature, total up-sampling factor).
AUX_HEADS = {'aux2': (0, 4), 'aux3': (1, 8), 'aux4': (2, 16), 'aux5_4': (3, 32)}


class BiSeNetV2(nn.Module):
    """BiSeNet V2 for semantic segmentation.

    Input: ``(N, 3, H, W)`` float, normalised RGB, any H and W >= 1.
    Output in eval mode: logits ``(N, num_classes, H, W)`` float.
    In train mode with booster heads: a tuple ``(main, aux2, aux3, aux4, aux5_4)``, each
    ``(N, num_classes, H, W)``.
    """

    def __init__(self, config: BiSeNetV2Config = BiSeNetV2Config()) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.detail = DetailBranch(config.width)
        self.segment = SemanticBranch(config.width, config.depth)
        self.bga = BilateralGuidedAggregation(self.detail.out_channels)
        self.head = SegmentHead(self.detail.out_channels, config.head_channels,
                                config.num_classes, up_factor=8, booster=False)
        self.aux_names: Tuple[str, ...] = tuple(AUX_HEADS) if config.aux_heads else ()
        for name in self.aux_names:
            index, up = AUX_HEADS[name]
            in_ch = self.segment.stage_channels[index]
            self.add_module(name, SegmentHead(in_ch, 128, config.num_classes, up, booster=True))

    def use_matmul_upsample(self, enabled: bool = True) -> None:
        """Train mode only: compute every head's final upsample with :func:`bilinear_upsample`
        (same values, faster training on CPUs); eval mode and exports are unaffected."""
        for module in self.modules():
            if isinstance(module, SegmentHead):
                module.matmul_upsample = bool(enabled)

    def forward(self, x: torch.Tensor):  # noqa: D102 - documented on the class
        if self.training and self.aux_names:
            return self.forward_with_aux(x)
        return self._with_size_policy(x, lambda t: (self._forward_main(t)[0],))[0]

    def forward_with_aux(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Main and booster logits ``(main, aux2, aux3, aux4, aux5_4)``, any mode."""
        if not self.aux_names:
            raise RuntimeError('this BiSeNetV2 was built without booster heads '
                               '(aux_heads=False)')
        return self._with_size_policy(x, self._forward_all)

    def _forward_main(self, x: torch.Tensor) -> Tuple[torch.Tensor, Sequence[torch.Tensor]]:
        features = self.segment(x)
        fused = self.bga(self.detail(x), features[4])
        return self.head(fused), features

    def _forward_all(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        main, features = self._forward_main(x)
        aux = [getattr(self, name)(features[AUX_HEADS[name][0]]) for name in self.aux_names]
        return (main, *aux)

    def _with_size_policy(self, x: torch.Tensor, run) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'BiSeNetV2 expects input (N, 3, H, W), got {tuple(x.shape)}')
        h, w = int(x.shape[2]), int(x.shape[3])
        pad_h, pad_w = -h % OUTPUT_STRIDE, -w % OUTPUT_STRIDE
        if pad_h == 0 and pad_w == 0:
            return run(x)
        policy = SizePolicy(self.config.size_policy)
        if policy is SizePolicy.STRICT:
            raise ValueError(f'input size {h}x{w} is not a multiple of {OUTPUT_STRIDE} and '
                             "size_policy is 'strict'")
        if policy is SizePolicy.PAD:
            outputs = run(F.pad(x, (0, pad_w, 0, pad_h)))
            return tuple(o[:, :, :h, :w] for o in outputs)
        size = (_round_to_stride(h), _round_to_stride(w))
        outputs = run(F.interpolate(x, size=size, mode='bilinear', align_corners=False))
        return tuple(F.interpolate(o, size=(h, w), mode='bilinear', align_corners=False)
                     for o in outputs)


def _round_to_stride(n: int) -> int:
    return max(OUTPUT_STRIDE, int(round(n / OUTPUT_STRIDE)) * OUTPUT_STRIDE)
