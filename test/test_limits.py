"""Bounds on untrusted input: pixels, threads, memory of a batch, parsed text and YAML."""

import os

import pytest

from bisenet_ros.limits import (available_cpus, BYTES_PER_PIXEL, bytes_per_pixel, check_pixels,
                                DECODER_MAX_PIXELS, LimitError, machine_memory,
                                MAX_REASON_CHARS, parse_yaml, pixel_bound, shorten,
                                threads_problem, work_problem)


def test_pixels_above_the_bound_are_refused_naming_both():
    check_pixels(4096, 4096, 4096 * 4096, 'frame')
    with pytest.raises(LimitError, match=r'frame: 20000x20000 = 400000000 pixels exceeds '
                                         r'max_input_pixels 16777216'):
        check_pixels(20000, 20000, 4096 * 4096, 'frame')
    with pytest.raises(LimitError, match='empty'):
        check_pixels(0, 10, 100, 'frame')


def test_threads_are_bounded_by_the_cpus_of_this_process():
    cpus = available_cpus()
    assert cpus == len(os.sched_getaffinity(0))
    assert threads_problem(0) is None and threads_problem(cpus) is None
    assert f'0..{cpus}' in threads_problem(cpus + 1) and f'got {cpus + 1}' in \
        threads_problem(cpus + 1)
    assert 'got -1' in threads_problem(-1)


def test_work_that_cannot_fit_in_memory_is_refused():
    assert machine_memory() > 0
    assert work_problem(512, 1024, 2) is None
    reason = work_problem(8192, 8192, 4)
    assert reason is not None and 'GiB' in reason and '4 x 8192x8192' in reason


def test_yaml_bombs_and_deep_nesting_are_refused_before_loading():
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    lines += [f'a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * 10) + ']' for i in range(1, 9)]
    with pytest.raises(LimitError, match='more than 100000 YAML nodes'):
        parse_yaml('\n'.join(lines), 'label set x.yaml')
    with pytest.raises(LimitError, match='deeper than 64'):
        parse_yaml('[' * 100 + ']' * 100, 'params file')
    with pytest.raises(LimitError, match='not valid YAML'):
        parse_yaml('a: [1, 2', 'params file')
    assert parse_yaml('node:\n  ros__parameters: {a: 1}\n', 'params file') == \
        {'node': {'ros__parameters': {'a': 1}}}


def test_a_negative_bound_is_refused_never_turned_off():
    with pytest.raises(LimitError, match=r'max_input_pixels must be in 1\.\.67108864 .*got -1'):
        check_pixels(10, 10, -1, 'frame')
    assert pixel_bound(0) == DECODER_MAX_PIXELS  # 0: the decoder's ceiling, still a bound
    with pytest.raises(LimitError, match='exceeds max_input_pixels 67108864'):
        check_pixels(8193, 8192, 0, 'frame')
    with pytest.raises(LimitError, match='got 1e+06|got 1000000.0'):
        pixel_bound(1e6)


def test_the_memory_bound_scales_with_classes_and_the_confidence_output():
    assert bytes_per_pixel() == BYTES_PER_PIXEL == bytes_per_pixel(11)
    # measured (docs/reliability.md): 150 classes ONNX Runtime 1561 B/px, 2826 with confidence
    assert bytes_per_pixel(150) >= 1561 and bytes_per_pixel(150, confidence=True) >= 2826
    memory = machine_memory()
    side = int((memory / bytes_per_pixel(11)) ** 0.5 * 0.9)  # fits with 11 classes
    assert work_problem(side, side) is None
    reason = work_problem(side, side, 1, num_classes=150, confidence=True)
    assert reason is not None and 'for 150 classes with confidence' in reason


def test_reasons_are_shortened_to_a_bound():
    assert shorten('x' * 10) == 'x' * 10
    cut = shorten('e' * 1_000_000)
    kept = cut.index('...')
    assert len(cut) == MAX_REASON_CHARS and cut.endswith(f'({1_000_000 - kept} more characters)')
