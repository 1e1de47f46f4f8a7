"""Named BiSeNet V2 variants and the builder used by checkpoints, training and export."""

from __future__ import annotations

from typing import Dict, Tuple, Union

from .bisenetv2 import BiSeNetV2, BiSeNetV2Config, SizePolicy

#: Variant name -> (width multiplier alpha, depth multiplier d), as in the paper.
#: BiSeNetV2-Large doubles every channel count and triples the stride-1 GE layers.
VARIANTS: Dict[str, Tuple[float, float]] = {
    'bisenetv2': (1.0, 1.0),
    'bisenetv2_large': (2.0, 3.0),
}


def build_model(variant: str = 'bisenetv2', num_classes: int = 19, *, aux_heads: bool = False,
                size_policy: Union[str, SizePolicy] = SizePolicy.PAD) -> BiSeNetV2:
    """Build an untrained model of a named variant.

    Args:
        variant: A key of :data:`VARIANTS`.
        num_classes: Classes predicted by every head.
        aux_heads: Add the booster heads (training only; inference never runs them).
        size_policy: ``'pad'``, ``'resize'`` or ``'strict'`` for H, W not divisible by 32.

    Raises:
        ValueError: unknown variant or non-positive ``num_classes``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown model variant '{variant}'; expected one of "
                         f'{sorted(VARIANTS)}')
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    width, depth = VARIANTS[variant]
    return BiSeNetV2(BiSeNetV2Config(num_classes=num_classes, width=width, depth=depth,
                                     aux_heads=aux_heads, size_policy=SizePolicy(size_policy)))


def variant_of(width: float, depth: float) -> str:
    """Name of the variant with these multipliers; ``ValueError`` if none matches."""
    for name, (w, d) in VARIANTS.items():
        if abs(w - width) < 1e-6 and abs(d - depth) < 1e-6:
            return name
    raise ValueError(f'no known variant has width {width} and depth {depth}')
