"""Bounds on untrusted input: pixels, threads, memory of a batch, parsed text and YAML."""

import os

import pytest

from bisenet_ros.limits import (available_cpus, check_pixels, LimitError, machine_memory,
                                parse_yaml, threads_problem, work_problem)


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
