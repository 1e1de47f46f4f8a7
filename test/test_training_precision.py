"""CPU training precision: bf16 + channels_last exactly where the CPU has native bf16."""

import pytest

from bisenet_ros.training.precision import cpu_flags, native_bf16, resolve_cpu_precision

ZEN4 = frozenset({'avx2', 'avx512f', 'avx512_bf16', 'avx512_vnni'})
SAPPHIRE_RAPIDS = frozenset({'avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'})
AVX2_ONLY = frozenset({'avx', 'avx2', 'fma'})


def test_cpu_flags_reads_the_first_cpu_and_tolerates_a_missing_file(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n'
                    'processor\t: 1\nflags\t\t: fpu\n')
    assert cpu_flags(info) == {'fpu', 'avx2', 'avx512_bf16'}
    assert cpu_flags(tmp_path / 'absent') == frozenset()


@pytest.mark.parametrize('flags, native', [(ZEN4, True), (SAPPHIRE_RAPIDS, True),
                                           (AVX2_ONLY, False), (frozenset(), False)])
def test_auto_turns_bf16_and_channels_last_on_only_with_native_bf16(flags, native):
    assert native_bf16(flags) is native
    choice = resolve_cpu_precision('auto', 'auto', flags=flags)
    assert (choice.bf16, choice.channels_last) == (native, native)
    assert ('native bf16' in choice.reason) and ('auto' in choice.reason)


def test_the_config_overrides_auto():
    choice = resolve_cpu_precision(False, True, flags=ZEN4)
    assert (choice.bf16, choice.channels_last) == (False, True)
    assert 'bf16 autocast off (config)' in choice.reason
    choice = resolve_cpu_precision(True, None, flags=AVX2_ONLY)
    assert (choice.bf16, choice.channels_last) == (True, False)


def test_a_bad_setting_names_the_key():
    with pytest.raises(ValueError, match="train.cpu_bf16 must be true, false or 'auto'"):
        resolve_cpu_precision('yes', 'auto', flags=ZEN4)
