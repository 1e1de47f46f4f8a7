"""What this CPU runs natively, read at run time (never assumed): bf16 and fast int8 dot products.

The flags come from ``/proc/cpuinfo`` (Linux), or from the ``BISENET_CPU_FLAGS`` environment
variable when it is set (comma or space separated; empty means "no features"), so that tests and
users can force a feature mask. Off Linux, with no variable, the flag set is empty: nothing is
assumed, ``precision='auto'`` then runs fp32.

* Native bf16: ``avx512_bf16`` or ``amx_bf16`` (oneDNN/OpenVINO run bf16 kernels; without them
  bf16 is emulated and slower than fp32).
* Fast int8: ``avx512_vnni``, ``avx_vnni`` or ``amx_int8`` (int8 dot products; without them
  int8 kernels gain little over fp32 and quantize with a reduced range).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import FrozenSet, Iterable, Optional

#: Environment variable overriding the detected flags (tests, users forcing a mask).
FLAGS_ENV = 'BISENET_CPU_FLAGS'
BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16'})
INT8_FLAGS = frozenset({'avx512_vnni', 'avx_vnni', 'amx_int8'})


@dataclass(frozen=True)
class CpuFeatures:
    """The features ``precision='auto'`` decides by.

    Attributes:
        flags: Every flag read (lower case).
        source: Where they came from: ``'/proc/cpuinfo'``, ``'BISENET_CPU_FLAGS'`` or
            ``'unknown'``.
    """

    flags: FrozenSet[str]
    source: str = 'given'

    @property
    def native_bf16(self) -> bool:
        """AVX512-BF16 or AMX-BF16."""
        return bool(self.flags & BF16_FLAGS)

    @property
    def fast_int8(self) -> bool:
        """AVX512-VNNI, AVX-VNNI or AMX-INT8."""
        return bool(self.flags & INT8_FLAGS)

    @property
    def avx2_int8(self) -> bool:
        """AVX2 without VNNI: int8 through 16-bit multiply-adds, still faster than fp32 here
        (ONNX Runtime 1.48x, OpenVINO 1.49x at 480x640 on an AVX2-only AMD EPYC, 2 threads;
        docs/backends.md), so worth its agreement check."""
        return 'avx2' in self.flags

    def describe(self) -> str:
        """One line for logs, e.g. ``'native bf16: no, fast int8: no (/proc/cpuinfo)'``."""
        yes_no = {True: 'yes', False: 'no'}
        return (f'native bf16: {yes_no[self.native_bf16]}, fast int8: '
                f'{yes_no[self.fast_int8]} ({self.source})')


def parse_flags(text: str) -> FrozenSet[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` text (empty when none)."""
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):  # x86, ARM
            return frozenset(value.lower().split())
    return frozenset()


def features_from(flags: Iterable[str], source: str = 'given') -> CpuFeatures:
    """:class:`CpuFeatures` of an explicit flag set (what tests force)."""
    return CpuFeatures(frozenset(f.strip().lower() for f in flags if f.strip()), source)


def cpu_features(cpuinfo: Optional[Path] = None) -> CpuFeatures:
    """This CPU's features: ``BISENET_CPU_FLAGS`` when set, else ``cpuinfo``
    (``/proc/cpuinfo``); an unreadable file gives no features (nothing assumed)."""
    forced = os.environ.get(FLAGS_ENV)
    if forced is not None:
        return features_from(forced.replace(',', ' ').split(), FLAGS_ENV)
    path = Path('/proc/cpuinfo') if cpuinfo is None else Path(cpuinfo)
    try:
        return CpuFeatures(parse_flags(path.read_text()), str(path))
    except OSError:
        return CpuFeatures(frozenset(), 'unknown')


def cpu_model_name(cpuinfo: Optional[Path] = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``), else the platform's processor
    string: what benchmarks print beside every figure."""
    import platform
    path = Path('/proc/cpuinfo') if cpuinfo is None else Path(cpuinfo)
    try:
        for line in path.read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def physical_cores(sysfs: Path = Path('/sys/devices/system/cpu')) -> int:
    """Physical cores among the CPUs this process may use (hyper-threads of one core count
    once, read from ``sysfs``); the usable CPU count where the topology cannot be read."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        try:
            siblings = (sysfs / f'cpu{cpu}' / 'topology' / 'thread_siblings_list').read_text()
        except OSError:
            siblings = str(cpu)
        cores.add(siblings.strip())
    return max(1, len(cores))
