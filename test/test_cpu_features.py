"""CPU features read at run time: /proc/cpuinfo text, the BISENET_CPU_FLAGS override."""

from bisenet_ros.cpu_features import cpu_features, features_from, FLAGS_ENV, parse_flags

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_bf16 amx_int8 amx_tile avx512_bf16
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu sse2
"""


def test_flags_are_read_from_the_first_processor_of_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    path = tmp_path / 'cpuinfo'
    path.write_text(CPUINFO)
    found = cpu_features(path)
    assert found.flags == parse_flags(CPUINFO) and 'amx_bf16' in found.flags
    assert found.native_bf16 and found.fast_int8 and found.source == str(path)
    assert 'native bf16: yes, fast int8: yes' in found.describe()


def test_masks_decide_bf16_and_int8():
    assert not features_from(['avx2', 'fma']).native_bf16
    assert not features_from(['avx2', 'fma']).fast_int8
    assert features_from(['avx_vnni']).fast_int8 and not features_from(['avx_vnni']).native_bf16
    assert features_from(['AVX512_BF16']).native_bf16  # case does not matter


def test_the_environment_overrides_cpuinfo_and_an_unreadable_file_assumes_nothing(tmp_path,
                                                                                  monkeypatch):
    path = tmp_path / 'cpuinfo'
    path.write_text(CPUINFO)
    monkeypatch.setenv(FLAGS_ENV, 'avx2,avx512_vnni')
    forced = cpu_features(path)
    assert forced.flags == {'avx2', 'avx512_vnni'} and forced.source == FLAGS_ENV
    monkeypatch.setenv(FLAGS_ENV, '')
    assert cpu_features(path).flags == frozenset()
    monkeypatch.delenv(FLAGS_ENV)
    missing = cpu_features(tmp_path / 'absent')
    assert missing.flags == frozenset() and missing.source == 'unknown'
    assert not missing.native_bf16 and not missing.fast_int8


def test_physical_cores_count_hyper_threads_of_one_core_once(tmp_path):
    import os
    from bisenet_ros.cpu_features import physical_cores
    allowed = sorted(os.sched_getaffinity(0))
    for cpu in allowed:  # pairs of usable CPUs share a core
        folder = tmp_path / f'cpu{cpu}' / 'topology'
        folder.mkdir(parents=True)
        first = cpu - cpu % 2
        (folder / 'thread_siblings_list').write_text(f'{first}-{first + 1}\n')
    assert physical_cores(tmp_path) == len({cpu - cpu % 2 for cpu in allowed})
    assert physical_cores(tmp_path / 'missing') == len(allowed)
