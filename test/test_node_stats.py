"""CameraStats: the /diagnostics verdict of one camera, clock offsets in particular."""

import time

import pytest

from bisenet_ros.ros.node_stats import CameraStats, OK, WARN


def report_after(ages):
    stats = CameraStats('/cam/image')
    stats.last_input_time = time.monotonic()
    for age in ages:
        stats.frame_published({'inference': 0.01}, age)
    return stats.report(len(ages), 0, stale_timeout=5.0, warn_age=1.0, future_tolerance=1.0,
                        past_limit=60.0)


@pytest.mark.parametrize('ages,level,words', [
    ([0.05, 0.08], OK, 'segmenting'),
    ([-3599.967, -3599.95], WARN, 'input stamps up to 3599.967 s in the future'),
    ([-0.5], OK, 'segmenting'),  # within the tolerance (clocks of two machines)
    ([3600.2, 3600.1], WARN, 'input stamps up to 3600.200 s in the past'),
    ([30.0], WARN, 'input age at publish 30.00 s > 1.0 s'),  # late, not a clock offset
])
def test_clock_offsets_are_named(ages, level, words):
    got_level, message, values = report_after(ages)
    assert (got_level, words in message) == (level, True), message
    kv = dict(values)
    assert float(kv['input_age_min_ms']) == pytest.approx(1000 * min(ages), abs=0.1)
    assert float(kv['input_age_max_ms']) == pytest.approx(1000 * max(ages), abs=0.1)
