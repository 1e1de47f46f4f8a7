"""Temporal smoothing: the moving average, when it starts again, its bounds, and what it does to
flicker on a steady scene and to a moving edge."""

import numpy as np
import pytest

from bisenet_ros.evaluation.accumulators import TemporalConsistency
from bisenet_ros.limits import LimitError
from bisenet_ros.temporal_smoothing import (CameraSmoothers, check_bounds, check_weight,
                                            labels_and_confidence, softmax, TemporalSmoother)

MS = 10**6


def _probabilities(rng, shape=(3, 4, 5)):
    return softmax(rng.normal(size=shape).astype(np.float32) * 3)


def test_softmax_matches_the_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 6, 7)) * 40  # float64, large: the max is subtracted first
    expected = np.exp(logits - logits.max(axis=0))
    expected /= expected.sum(axis=0)
    out = softmax(logits)
    assert out.dtype == np.float32 and out.shape == logits.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-5)


def test_moving_average_of_three_frames():
    rng = np.random.default_rng(1)
    frames = [_probabilities(rng) for _ in range(3)]
    smoother = TemporalSmoother(0.25)
    expected = frames[0]
    out = smoother.update(frames[0], 0, 'cam')
    np.testing.assert_array_equal(out, frames[0])
    for i, frame in enumerate(frames[1:], 1):
        expected = 0.25 * frame + 0.75 * expected
        out = smoother.update(frame, i * 100 * MS, 'cam')
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert smoother.frames == 3 and smoother.resets == {}
    assert smoother.state_bytes == 4 * 3 * 4 * 5
    labels, confidence = labels_and_confidence(out)
    np.testing.assert_array_equal(labels, expected.argmax(axis=0))
    np.testing.assert_allclose(confidence, expected.max(axis=0), rtol=1e-6)
    assert frames[0].sum() == pytest.approx(20.0, rel=1e-5)  # inputs are never written


def test_logits_in_are_averaged_as_probabilities():
    rng = np.random.default_rng(2)
    logits = [rng.normal(size=(4, 3, 3)).astype(np.float32) for _ in range(2)]
    smoother = TemporalSmoother(0.5)
    smoother.update(logits[0], 0, 'cam', logits=True)
    out = smoother.update(logits[1], 1, 'cam', logits=True)
    np.testing.assert_allclose(out, 0.5 * softmax(logits[0]) + 0.5 * softmax(logits[1]),
                               rtol=1e-6)


def test_weight_one_keeps_no_state():
    rng = np.random.default_rng(3)
    smoother = TemporalSmoother(1.0)
    frame = _probabilities(rng)
    assert smoother.update(frame, 0, 'cam') is frame
    second = _probabilities(rng)
    np.testing.assert_array_equal(smoother.update(second, 1, 'cam'), second)
    assert smoother.state_bytes == 0 and smoother.frames == 0


@pytest.mark.parametrize('change, reason', [
    (dict(shape=(3, 4, 6)), 'size'),
    (dict(shape=(2, 4, 5)), 'size'),
    (dict(frame_id='other_cam'), 'frame_id'),
    (dict(stamp=5_100 * MS - 1_000 * MS - 1), 'stamp backwards'),  # a bag that loops
    (dict(stamp=5_100 * MS + 1_000 * MS + 1), 'stamp gap'),
])
def test_starts_again_on(change, reason):
    rng = np.random.default_rng(4)
    smoother = TemporalSmoother(0.5, max_gap_s=1.0)
    smoother.update(_probabilities(rng), 5_000 * MS, 'cam')
    smoother.update(_probabilities(rng), 5_100 * MS, 'cam')
    frame = _probabilities(rng, change.get('shape', (3, 4, 5)))
    out = smoother.update(frame, change.get('stamp', 5_200 * MS), change.get('frame_id', 'cam'))
    np.testing.assert_array_equal(out, frame)  # the new frame alone
    assert smoother.resets == {reason: 1} and smoother.last_reset == reason
    assert smoother.frames == 1


@pytest.mark.parametrize('stamp', [100 * MS, 1_100 * MS])  # the same stamp; exactly the gap
def test_does_not_start_again_within_bounds(stamp):
    rng = np.random.default_rng(5)
    smoother = TemporalSmoother(0.5, max_gap_s=1.0)
    first = _probabilities(rng)
    smoother.update(first, 100 * MS, 'cam')
    second = _probabilities(rng)
    out = smoother.update(second, stamp, 'cam')
    np.testing.assert_allclose(out, 0.5 * first + 0.5 * second, rtol=1e-6)
    assert smoother.resets == {} and smoother.frames == 2


@pytest.mark.parametrize('late', [150 * MS, 200 * MS - 1, 200 * MS - 1_000 * MS])
def test_a_late_frame_leaves_the_state_as_it_is(late):
    # Two inference streams: an older frame may finish after a newer one of its camera.
    rng = np.random.default_rng(7)
    smoother = TemporalSmoother(0.5, max_gap_s=1.0)
    first, second, old, third = (_probabilities(rng) for _ in range(4))
    smoother.update(first, 100 * MS, 'cam')
    state = smoother.update(second, 200 * MS, 'cam').copy()
    np.testing.assert_array_equal(smoother.update(old, late, 'cam'), old)
    out = smoother.update(third, 300 * MS, 'cam')
    np.testing.assert_allclose(out, 0.5 * third + 0.5 * state, rtol=1e-6)
    assert smoother.resets == {} and smoother.frames == 3


def test_set_weight_keeps_the_state_and_one_frees_it():
    rng = np.random.default_rng(6)
    smoother = TemporalSmoother(0.5)
    first, second, third = (_probabilities(rng) for _ in range(3))
    smoother.update(first, 0, 'cam')
    smoother.set_weight(0.2)
    out = smoother.update(second, 1, 'cam')
    np.testing.assert_allclose(out, 0.2 * second + 0.8 * first, rtol=1e-6)
    smoother.set_weight(1.0)
    assert smoother.state_bytes == 0 and smoother.resets == {'off': 1}
    assert smoother.update(third, 2, 'cam') is third


def test_cameras_are_independent():
    rng = np.random.default_rng(7)
    cameras = CameraSmoothers(0.5)
    assert cameras.enabled
    front = [_probabilities(rng) for _ in range(2)]
    back = _probabilities(rng, (3, 2, 2))
    cameras.update('front', front[0], 0, 'front_optical')
    cameras.update('back', back, 0, 'back_optical')  # another size and frame_id: no reset
    out = cameras.update('front', front[1], 1, 'front_optical')
    np.testing.assert_allclose(out, 0.5 * front[0] + 0.5 * front[1], rtol=1e-6)
    assert cameras.camera('front').resets == {} and cameras.camera('back').frames == 1
    assert cameras.state_bytes == 4 * (3 * 4 * 5 + 3 * 2 * 2)
    cameras.remove('back')
    assert cameras.state_bytes == 4 * 3 * 4 * 5
    cameras.set_weight(1.0)
    assert not cameras.enabled and cameras.state_bytes == 0


def test_state_bound_and_bad_inputs_are_clear_errors():
    smoother = TemporalSmoother(0.5, max_state_bytes=4 * 3 * 4 * 5 - 1, name='front')
    with pytest.raises(LimitError, match=r'front: smoothing a \(3, 4, 5\) frame needs'):
        smoother.update(np.full((3, 4, 5), 1 / 3, np.float32), 0, 'cam')
    smoother = TemporalSmoother(0.5, name='front')
    for bad, shown in [(np.zeros((3, 4, 5), np.uint8), r'uint8 \(3, 4, 5\)'),
                       (np.zeros((4, 5), np.float32), r'float32 \(4, 5\)'),
                       (np.zeros((3, 0, 5), np.float32), r'float32 \(3, 0, 5\)'),
                       ([[[0.5]]], 'list')]:
        with pytest.raises(ValueError, match=r'front: expected float \(C, H, W\) '
                           r'probabilities, got ' + shown):
            smoother.update(bad, 0, 'cam')
    assert smoother.state_bytes == 0
    for weight in (0, -0.5, 1.5, float('nan'), True, '0.5'):
        with pytest.raises(ValueError, match=r'weight must be in \(0, 1\] \(1 = off\)'):
            check_weight(weight)
    for gap in (0, -1, float('inf'), float('nan'), None):
        with pytest.raises(ValueError, match='max_gap_s must be a finite number'):
            check_bounds(gap)
    with pytest.raises(ValueError, match='max_state_bytes must be an int > 0'):
        CameraSmoothers(0.5, max_state_bytes=0)
    with pytest.raises(ValueError, match=r'labels_and_confidence: expected probabilities'):
        labels_and_confidence(np.zeros((4, 5), np.float32))


def test_labels_dtype_and_ties():
    probabilities = np.zeros((300, 1, 2), np.float32)
    probabilities[299, 0, 0] = 1.0
    probabilities[[5, 7], 0, 1] = 0.5  # a tie goes to the lowest id
    labels, confidence = labels_and_confidence(probabilities)
    assert labels.dtype == np.uint16 and labels.tolist() == [[299, 5]]
    assert confidence.tolist() == [[1.0, 0.5]]
    small = labels_and_confidence(np.full((11, 2, 2), 1 / 11, np.float32), ignore_index=11)[0]
    assert small.dtype == np.uint8


def _scene(edge, height=8, width=40):
    """Two classes split at column ``edge`` (class 0 left, 1 right), as probabilities."""
    truth = (np.arange(width)[None, :] >= edge).repeat(height, axis=0).astype(np.uint8)
    probabilities = np.where(truth[None] == np.arange(2)[:, None, None], 0.7, 0.3)
    return truth, probabilities.astype(np.float32)


def _run(weight, frames, noise, rng):
    """Mean flicker and pixel accuracy of the argmax over ``frames`` of (truth, probs)."""
    smoother, flicker, correct = TemporalSmoother(weight), TemporalConsistency(), []
    for i, (truth, probabilities) in enumerate(frames):
        noisy = probabilities + rng.normal(0, noise, probabilities.shape).astype(np.float32)
        noisy = np.clip(noisy, 1e-3, None)
        noisy /= noisy.sum(axis=0)
        labels = labels_and_confidence(smoother.update(noisy, i * 100 * MS, 'cam'))[0]
        flicker.add(labels)
        correct.append(float((labels == truth).mean()))
    return flicker.summary()['mean_flip_share'], float(np.mean(correct))


def test_smoothing_steadies_a_still_scene_and_lags_a_moving_edge():
    """A still scene with noisy probabilities flickers less, and is as right or more, with
    smoothing; an edge sweeping 4 pixels per frame is found later (lower accuracy)."""
    rng = np.random.default_rng(8)
    still = [_scene(20)] * 30
    raw_flicker, raw_acc = _run(1.0, still, 0.25, rng)
    smooth_flicker, smooth_acc = _run(0.3, still, 0.25, rng)
    assert smooth_flicker < raw_flicker / 3 and smooth_acc >= raw_acc
    moving = [_scene(4 + 4 * i) for i in range(8)]
    assert _run(1.0, moving, 0.0, rng)[1] == 1.0
    assert _run(0.3, moving, 0.0, rng)[1] < 0.95
