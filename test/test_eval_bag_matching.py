"""Pairing images with ground truth by header stamp: order, windows, tolerance, accounting."""

import pytest

from bisenet_ros.evaluation.stamp_matching import StampMatcher

S = 1_000_000_000  # one second in ns


def _run(events, **kwargs):
    """events: ('i'|'g', stamp, log_time); returns (released pairs, counts)."""
    matcher = StampMatcher(**kwargs)
    out = []
    for kind, stamp, log in events:
        if kind == 'i':
            out += matcher.add_image(stamp, log, f'img{stamp}')
        else:
            out += matcher.add_partner(stamp, log, f'gt{stamp}')
    out += matcher.flush()
    return [(p.stamp_ns, p.partner) for p in out], matcher.counts


def test_interleaved_both_orders_keep_image_order():
    pairs, counts = _run([('i', 1, 10), ('g', 2, 11), ('g', 1, 12), ('i', 2, 13),
                          ('i', 3, 14), ('g', 3, 15)])
    assert pairs == [(1, 'gt1'), (2, 'gt2'), (3, 'gt3')]
    assert counts.as_dict() == {'images': 3, 'matched': 3, 'images_without_partner': 0,
                                'partners': 3, 'partners_without_image': 0,
                                'duplicate_partner_stamps': 0}


def test_unmatched_both_ways_are_counted_not_dropped():
    pairs, counts = _run([('i', 1, 10), ('g', 1, 11), ('i', 2, 12), ('g', 5, 13),
                          ('i', 3, 14), ('g', 3, 15)])
    assert pairs == [(1, 'gt1'), (2, None), (3, 'gt3')]
    assert (counts.matched, counts.images_without_partner, counts.partners_without_image) \
        == (2, 1, 1)


def test_window_releases_waiting_images_in_order():
    matcher = StampMatcher(window_ns=2 * S)
    assert matcher.add_image(1, 0, 'a') == []          # waits for its ground truth
    assert matcher.add_image(2, S, 'b') == []
    assert matcher.add_partner(2, S, 'gt2') == []      # b matched but a is first in line
    released = matcher.add_image(3, 3 * S, 'c')       # 3 s later: a gives up
    assert [(p.stamp_ns, p.matched) for p in released] == [(1, False), (2, True)]
    assert matcher.pending == 1
    # Ground truth older than the window with no image is given up (and counted) as well.
    matcher.add_partner(99, 3 * S, 'gt99')
    matcher.add_image(4, 6 * S, 'd')
    assert matcher.counts.partners_without_image == 1


def test_tolerance_picks_nearest():
    pairs, _ = _run([('g', 100, 0), ('g', 130, 0), ('i', 120, 1), ('i', 300, 2)],
                    tolerance_ns=25)
    assert pairs == [(120, 'gt130'), (300, None)]


def test_duplicate_ground_truth_stamp_counted():
    pairs, counts = _run([('g', 1, 0), ('g', 1, 1), ('i', 1, 2)])
    assert pairs == [(1, 'gt1')] and counts.duplicate_partner_stamps == 1
    assert counts.partners_without_image == 1


def test_bad_arguments():
    with pytest.raises(ValueError):
        StampMatcher(window_ns=-1)
