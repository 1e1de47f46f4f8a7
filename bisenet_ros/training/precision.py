"""Training precision and memory format on CPU, chosen from what the processor does natively.

bfloat16 autocast only pays where the CPU has bf16 dot-product instructions (AVX512-BF16 or
AMX-BF16): measured on a Zen 4 host (AVX512-BF16, no AMX), one BiSeNet V2 training step (batch 8,
192x256, 2 threads) took 1.60 s in fp32, 0.80 s with bf16 autocast and 0.74 s with bf16 autocast
+ channels_last; on an earlier AVX2-only host bf16 autocast was 15x *slower* than fp32 (emulated).
So ``auto`` turns bf16 + channels_last on exactly when those instructions are present.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import FrozenSet, Optional, Union

LOGGER = logging.getLogger(__name__)

#: /proc/cpuinfo flags that mean native bf16 arithmetic.
BF16_FLAGS = ('avx512_bf16', 'amx_bf16')

Setting = Union[bool, str, None]


def cpu_flags(cpuinfo: Union[str, Path] = '/proc/cpuinfo') -> FrozenSet[str]:
    """The instruction-set flags of the first CPU listed in ``cpuinfo`` (empty when unreadable,
    e.g. not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors='replace')
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
            return frozenset(value.split())
    return frozenset()


def native_bf16(flags: Optional[FrozenSet[str]] = None) -> bool:
    """True when the CPU has bf16 dot-product instructions (``BF16_FLAGS``)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


@dataclass(frozen=True)
class CpuPrecision:
    """What a CPU training run uses, and why (the reason is logged once)."""

    bf16: bool
    channels_last: bool
    reason: str


def _as_setting(value: Setting, key: str) -> Optional[bool]:
    """``'auto'``/``None`` -> ``None``; booleans as they are; anything else is an error."""
    if value is None or value == 'auto':
        return None
    if isinstance(value, bool):
        return value
    raise ValueError(f"train.{key} must be true, false or 'auto', got {value!r}")


def resolve_cpu_precision(bf16: Setting = 'auto', channels_last: Setting = 'auto', *,
                          flags: Optional[FrozenSet[str]] = None) -> CpuPrecision:
    """Resolve the ``train.cpu_bf16`` and ``train.channels_last`` settings for a CPU run.

    ``'auto'`` (or ``None``) picks bf16 autocast + channels_last where :func:`native_bf16`, and
    fp32 + contiguous elsewhere; an explicit boolean always wins.
    """
    want_bf16 = _as_setting(bf16, 'cpu_bf16')
    want_cl = _as_setting(channels_last, 'channels_last')
    flags = cpu_flags() if flags is None else flags
    present = [f for f in BF16_FLAGS if f in flags]
    native = native_bf16(flags)
    found = (f"native bf16 ({', '.join(present)})" if native
             else f"no native bf16 (none of {', '.join(BF16_FLAGS)})")
    use_bf16 = native if want_bf16 is None else want_bf16
    use_cl = native if want_cl is None else want_cl
    parts = []
    for name, value, wanted in (('bf16 autocast', use_bf16, want_bf16),
                                ('channels_last', use_cl, want_cl)):
        how = 'auto' if wanted is None else 'config'
        parts.append(f"{name} {'on' if value else 'off'} ({how})")
    return CpuPrecision(use_bf16, use_cl, f"CPU has {found}: {', '.join(parts)}")
