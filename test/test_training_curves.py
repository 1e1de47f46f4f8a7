"""Chart helpers that need no figure."""

from bisenet_ros.training.curves import spaced_labels


def test_spaced_labels_keep_the_given_points_and_space_the_others():
    xs = [1000, 2000, 3000, 11000, 11500, 12000, 12500, 17000, 17500, 18000]
    flat = [60.0] * len(xs)
    # best (index 2) and last kept; from the end back, points under 1,000 from a chosen one
    # along x (on a flat curve) are skipped
    assert spaced_labels(xs, flat, 1000, 1.0, keep=(2, 9)) == [0, 1, 2, 4, 6, 7, 9]
    # far enough apart along y, close points are all labelled
    assert spaced_labels(xs, [10.0 * i for i in range(10)], 1000, 1.0) == list(range(10))
    assert spaced_labels(xs, flat, 0, 0) == list(range(len(xs)))  # no gap: every point
    assert spaced_labels([], [], 10, 1) == []
    # a kept point is labelled even when it is too close to another kept one
    assert spaced_labels([0, 1], [5, 5], 10, 1, keep=(0, 1)) == [0, 1]
