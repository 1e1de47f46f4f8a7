"""The segmentation worker's two-stage pipeline, without a ROS graph: real frame slots, stats,
model holder and Segmenter (a small random BiSeNet V2 on CPU), and a camera object of this test
that records what the worker hands it (the worker's only ROS-facing dependency)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from rclpy.logging import get_logger
from sensor_msgs.msg import Image

from bisenet_ros.image_conversions import fill_image
from bisenet_ros.inference.postprocess import blend_overlay
from bisenet_ros.ros.frame_slots import LatestFrameSlots
from bisenet_ros.ros.model_holder import ModelHolder
from bisenet_ros.ros.node_stats import CameraStats
from bisenet_ros.ros.params import NodeParams
from bisenet_ros.ros.work import Outputs
from bisenet_ros.ros.worker import SegmentationWorker
from ros_harness import pattern_image, write_random_checkpoint

H, W = 64, 96


class RecordingCamera:
    """What the worker needs of a camera: which outputs are wanted, deserializing a frame, and
    publishing results; it records the order of those calls."""

    topic = '/cam/image_raw'
    depth = None

    def __init__(self) -> None:
        self.events = []
        self.published = {}
        self.taken = {}  # stamp sec -> threading.Event set when stage 1 deserialized it
        self.taken_by = {}  # stamp sec -> the stage-1 thread that deserialized it
        self.hold_first_publish_until = None  # stamp sec whose deserialize must come first
        self.overlapped = None

    def wanted(self, switches):
        return Outputs(mask=True, color_mask=True, overlay=True)

    def deserialize(self, msg):
        self.events.append(('deserialize', msg.header.stamp.sec))
        self.taken_by[msg.header.stamp.sec] = threading.current_thread()
        self.taken.setdefault(msg.header.stamp.sec, threading.Event()).set()
        return msg

    def publish(self, header, result, outputs, cloud=None, groups=None):
        sec = header.stamp.sec
        if self.hold_first_publish_until is not None and self.overlapped is None:
            later = self.taken.setdefault(self.hold_first_publish_until, threading.Event())
            self.overlapped = later.wait(60.0)
        self.events.append(('publish', sec))
        self.published[sec] = result


def wait_until(predicate, timeout=60.0):
    """Poll ``predicate`` until it holds (True) or ``timeout`` s pass (False)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        done.wait(0.01)
    return predicate()


def frame(image, encoding, sec):
    msg = fill_image(Image(), image, encoding)
    msg.header.stamp.sec = sec
    msg.header.frame_id = 'cam'
    return msg


@pytest.fixture(scope='module')
def holder(tmp_path_factory):
    model = write_random_checkpoint(tmp_path_factory.mktemp('worker') / 'random.pt')
    params = NodeParams.from_values({'model_path': str(model), 'backend': 'torch',
                                     'precision': 'fp32', 'threads': 1})
    holder = ModelHolder(get_logger('test_worker'))
    assert holder.load(params) is None
    yield holder, params
    holder.close()


def run_worker(holder, params, camera, *more, frames=()):
    """Start a worker for ``camera`` (and ``more`` cameras); ``frames``: ``(camera, msg)`` put
    into the slots before it starts, so that they are taken together."""
    cameras = [camera, *more]
    slots = LatestFrameSlots(len(cameras))
    for index, msg in frames:
        slots.put(index, msg)
    stats = [CameraStats(c.topic) for c in cameras]
    worker = SegmentationWorker(cameras, slots, stats, holder, lambda: params,
                                get_logger('test_worker'), lambda header: None, lambda: True)
    worker.start()
    return worker, slots, stats


class FailingInference:
    """Fault injection around the serving model's real backend: ``infer`` raises for the
    batches ``fails(batch)`` picks, and runs the real backend for the others."""

    def __init__(self, holder, fails):
        self.holder, self.fails, self.calls = holder, fails, []

    def __enter__(self):
        backend = self.holder.acquire().segmenter.backend
        self.holder.release()
        real = backend.infer
        self.backend = backend

        def infer(batch, outputs=('logits',)):
            self.calls.append(batch.shape)
            if self.fails(batch):
                raise RuntimeError(f'injected failure for a batch of {batch.shape}')
            return real(batch, outputs)
        backend.infer = infer
        return self

    def __exit__(self, *exc):
        del self.backend.infer  # the class's method again


def test_frame_n_is_published_while_frame_n_plus_1_is_taken_for_inference(holder):
    holder, params = holder
    camera = RecordingCamera()
    camera.hold_first_publish_until = 2  # frame 1's publish waits for stage 1 to take frame 2
    worker, slots, stats = run_worker(holder, params, camera)
    try:
        slots.put(0, frame(pattern_image(H, W, seed=1), 'bgr8', 1))
        assert camera.taken.setdefault(1, threading.Event()).wait(60.0)
        slots.put(0, frame(pattern_image(H, W, seed=2), 'bgr8', 2))
        assert wait_until(lambda: len(camera.published) == 2), camera.events
    finally:
        worker.stop()
    # In series, frame 2 could only be taken after frame 1's publish returned: the wait
    # above would time out and overlapped would be False.
    assert camera.overlapped is True, camera.events
    assert camera.events.index(('deserialize', 2)) < camera.events.index(('publish', 1))
    assert sorted(camera.published) == [1, 2]
    assert stats[0].published == 2 and worker.counters['frames_segmented'] == 2


def test_outputs_equal_the_segmenter_and_the_overlay_is_bgr_for_an_rgb_input(holder):
    holder, params = holder
    camera = RecordingCamera()
    worker, slots, _ = run_worker(holder, params, camera)
    image = pattern_image(H, W, seed=3)  # BGR
    try:
        slots.put(0, frame(image[:, :, ::-1].copy(), 'rgb8', 5))  # the same pixels as rgb8
        assert wait_until(lambda: 5 in camera.published)
    finally:
        worker.stop()
    segmenter = holder.acquire().segmenter
    try:
        expected = segmenter.segment(image, bgr=True, color=True, overlay=True,
                                     overlay_alpha=params.overlay_alpha)
    finally:
        holder.release()
    result = camera.published[5]
    np.testing.assert_array_equal(result.labels, expected.labels)
    np.testing.assert_array_equal(result.color, expected.color)
    np.testing.assert_array_equal(result.overlay, expected.overlay)  # BGR, as published
    np.testing.assert_array_equal(
        result.overlay, blend_overlay(image, expected.color, params.overlay_alpha, bgr=True))


def test_a_frame_that_fails_to_decode_is_counted_and_the_next_one_is_segmented(holder):
    holder, params = holder
    camera = RecordingCamera()
    worker, slots, stats = run_worker(holder, params, camera)
    try:
        bad = frame(pattern_image(H, W, seed=4), 'bgr8', 7)
        bad.step = 3  # shorter than a row
        slots.put(0, bad)
        assert wait_until(lambda: stats[0].rejected == 1)
        slots.put(0, frame(pattern_image(H, W, seed=5), 'bgr8', 8))
        assert wait_until(lambda: 8 in camera.published)
    finally:
        worker.stop()
    assert stats[0].rejected == 1 and 'step' in stats[0].last_reject_reason
    assert sorted(camera.published) == [8]


def test_a_call_that_runs_no_inference_leaves_the_stagger_duration_as_it_is(holder):
    holder, params = holder
    camera = RecordingCamera()
    worker, slots, stats = run_worker(holder, params, camera)
    try:
        slots.put(0, frame(pattern_image(H, W, seed=6), 'bgr8', 1))
        assert wait_until(lambda: 1 in camera.published)
        assert wait_until(lambda: worker.call_seconds > 0.0)
        seconds = worker.call_seconds
        bad = frame(pattern_image(H, W, seed=7), 'bgr8', 2)
        bad.step = 3  # rejected before inference: a call of no inference
        slots.put(0, bad)
        assert wait_until(lambda: stats[0].rejected == 1)
    finally:
        worker.stop()  # joins the stream: its call is done
    assert worker.call_seconds == seconds


def test_temporal_smoothing_averages_a_cameras_probabilities_over_frames(holder):
    """temporal_smoothing 0.5: the second frame's mask is the argmax of the average of both
    frames' class probabilities (not the second frame's own mask); a new frame_id resets it."""
    from dataclasses import replace
    import torch
    holder, params = holder
    smoothed = replace(params, temporal_smoothing=0.5)
    camera = RecordingCamera()
    worker, slots, _ = run_worker(holder, smoothed, camera)
    first, second = pattern_image(H, W, seed=11), pattern_image(H, W, seed=12)
    try:
        for sec, image in ((20, first), (21, second)):  # 1 s apart: within the gap bound
            slots.put(0, frame(image, 'bgr8', sec))
            assert wait_until(lambda: sec in camera.published)
        reset = frame(second, 'bgr8', 22)
        reset.header.frame_id = 'another_camera'
        slots.put(0, reset)
        assert wait_until(lambda: 22 in camera.published)
    finally:
        worker.stop()
    segmenter = holder.acquire().segmenter
    try:
        logits = [segmenter.backend.infer(segmenter_batch(segmenter, image), ('logits',))
                  ['logits'][0] for image in (first, second)]
        own = segmenter.segment(second).labels
    finally:
        holder.release()
    probabilities = [torch.softmax(torch.from_numpy(x), 0).numpy() for x in logits]
    expected = np.argmax(0.5 * probabilities[0] + 0.5 * probabilities[1], axis=0)
    assert not np.array_equal(expected, own)  # the average differs from the frame's own mask
    np.testing.assert_array_equal(camera.published[21].labels, expected)
    np.testing.assert_array_equal(camera.published[22].labels, own)  # reset: its own mask


def segmenter_batch(segmenter, image):
    """The network input of one BGR image, as the Segmenter makes it."""
    from bisenet_ros.preprocess import preprocess
    ls = segmenter.label_set
    return preprocess([image], ls.mean, ls.std, bgr=True, input_size=segmenter.input_size)[0]


def test_a_failing_call_rejects_its_frame_and_the_other_cameras_still_publish(holder):
    holder, params = holder
    cameras = [RecordingCamera(), RecordingCamera()]
    frames = [(0, frame(pattern_image(H, W, seed=30), 'bgr8', 30)),
              (1, frame(pattern_image(H // 2, W // 2, seed=31), 'rgb8', 31))]
    with FailingInference(holder, lambda batch: batch.shape[2] == H // 2) as faults:
        worker, _, stats = run_worker(holder, params, *cameras, frames=frames)
        try:
            assert wait_until(lambda: 30 in cameras[0].published and stats[1].rejected == 1)
        finally:
            worker.stop()
    # Smallest first: camera 1's call failed first, camera 0's call still ran and published.
    assert faults.calls == [(1, 3, H // 2, W // 2), (1, 3, H, W)]
    assert 'injected failure' in stats[1].last_reject_reason and not cameras[1].published
    assert stats[0].published == 1 and stats[0].rejected == 0
    assert worker.counters['inference_calls'] == 1


def test_a_failed_batch_is_retried_frame_by_frame(holder):
    holder, params = holder
    cameras = [RecordingCamera(), RecordingCamera()]
    frames = [(0, frame(pattern_image(H, W, seed=32), 'bgr8', 32)),
              (1, frame(pattern_image(H, W, seed=33), 'bgr8', 33))]
    with FailingInference(holder, lambda batch: batch.shape[0] > 1) as faults:
        worker, _, stats = run_worker(holder, params, *cameras, frames=frames)
        try:
            assert wait_until(lambda: 32 in cameras[0].published and 33 in cameras[1].published)
        finally:
            worker.stop()
    assert faults.calls == [(2, 3, H, W), (1, 3, H, W), (1, 3, H, W)]
    assert [s.rejected for s in stats] == [0, 0]
    assert worker.counters['frames_segmented'] == 2


@pytest.fixture(scope='module')
def two_streams(tmp_path_factory):
    """A holder serving the random model on OpenVINO with two inference streams."""
    pytest.importorskip('openvino', reason='openvino is not installed')
    model = write_random_checkpoint(tmp_path_factory.mktemp('streams') / 'random.pt')
    params = NodeParams.from_values({'model_path': str(model), 'backend': 'openvino',
                                     'precision': 'fp32', 'threads': 2,
                                     'inference_streams': 2})
    holder = ModelHolder(get_logger('test_worker'))
    assert holder.load(params) is None
    yield holder, params
    holder.close()


class OverlappingCalls:
    """Around the serving model's real backend: frame 1's call (the call of the thread that
    took frame 1, whichever call reaches the backend first) waits (up to 60 s) until the camera
    published frame 2 before it runs, so the two calls overlap and the first frame's outputs
    come last."""

    def __init__(self, holder, camera):
        self.holder, self.camera, self.overlapped = holder, camera, None
        self.gated = False

    def __enter__(self):
        backend = self.holder.acquire().segmenter.backend
        self.holder.release()
        real, self.backend = backend.infer, backend

        def infer(batch, outputs=('logits',)):
            if not self.gated and threading.current_thread() is self.camera.taken_by.get(1):
                self.gated = True
                self.overlapped = wait_until(lambda: 2 in self.camera.published)
            return real(batch, outputs)
        backend.infer = infer
        return self

    def __exit__(self, *exc):
        del self.backend.infer


def test_two_streams_infer_two_frames_at_once_and_outputs_keep_arrival_order(two_streams):
    holder, params = two_streams
    camera = RecordingCamera()
    with OverlappingCalls(holder, camera) as calls:
        worker, slots, stats = run_worker(holder, params, camera)
        try:
            slots.put(0, frame(pattern_image(H, W, seed=1), 'bgr8', 1))
            assert camera.taken.setdefault(1, threading.Event()).wait(60.0)
            slots.put(0, frame(pattern_image(H, W, seed=2), 'bgr8', 2))
            assert wait_until(lambda: stats[0].published + stats[0].superseded == 2), \
                camera.events
        finally:
            worker.stop()
    # With one stream frame 2 is taken only after frame 1's call returned, which waits for
    # frame 2's outputs: the wait times out and overlapped is False.
    assert calls.overlapped is True, camera.events
    # Frame 2's outputs went out first; frame 1's, older, are not published after them.
    assert sorted(camera.published) == [2] and stats[0].superseded == 1
    assert worker.counters['frames_segmented'] == 2 and worker.counters['inference_calls'] == 2
