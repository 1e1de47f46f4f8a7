"""The segmentation worker: newest frames in, masks out, as a two-stage pipeline.

Stage 1, threads ``segmentation_infer_<i>`` (one per inference stream of the serving model,
:attr:`Segmenter.streams <bisenet_ros.inference.Segmenter.streams>`): each takes the frames
:class:`~.frame_slots.LatestFrameSlots` holds (latest frame wins), deserializes and decodes them
into :class:`~bisenet_ros.images.ColorImage` values (checked once, there), and hands them to
:meth:`Segmenter.segment_groups <bisenet_ros.inference.Segmenter.segment_groups>`, which runs one
inference call per network size and channel order, smallest first (the labels, plus confidence for
the frames whose outputs need it). Each call's results go to stage 2 as soon as it returns (cameras
isolated: large frames never delay smaller ones taken with them); a failed call of several frames
is retried frame by frame, and a frame that still fails is counted as rejected while the other
calls go on. Stage 2, thread ``segmentation_publish``: renders what has subscribers (colour mask,
overlay, confidence images, the Nav2 cloud), serializes and publishes it with the input's header,
and records the per-stage times.

With several streams, several frames are inferred at once, their starts spread evenly over an
inference call's duration (a stream starts no sooner than ``1/streams`` of the last call's duration
after the previous start, so the masks come evenly spaced rather than in bunches of frames taken
together), and each stream takes its share of the cameras (at most ``ceil(cameras / streams)``
frames, those of cameras no other stream is working on first). A frame whose outputs would go out
after a newer frame's of the same camera is not published (counted as superseded): outputs leave in
the order frames arrived.

The two stages overlap: frame N is rendered and published while frame N+1 is inferred (numpy,
OpenCV, DDS and the inference runtimes release the GIL), so the node's own work no longer adds to
the inference time per frame. The hand-over holds one inference call's results: when publishing
is the slower stage, stage 1 waits for it instead of building a backlog, so a mask is at most one
inference plus one publish behind its frame's arrival. Plain threads; the ROS objects
(:class:`~.camera_io.CameraIO`) are handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
import queue
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..image_conversions import compressed_to_color, ConversionError, image_to_color
from ..limits import shorten
from ..inference.postprocess import blend_overlay, colorize_labels
from ..inference.segmenter import GroupResult
from ..temporal_smoothing import CameraSmoothers
from .frame_slots import Frame, LatestFrameSlots
from .node_stats import CameraStats
from .point_cloud import BadCameraInfo
from .params import NodeParams, SPECS
from .work import WorkItem

#: Seconds a stage waits for work before it looks at the stop flag again.
POLL_S = 0.2
#: Log throttle of the worker's warnings, seconds.
THROTTLE_S = 5.0


@dataclass
class InferredCall:
    """One inference call's results on their way to stage 2.

    Attributes:
        pairs: ``(work item, SegmentationResult)`` of each frame segmented.
        palette: ``(K, 3)`` uint8 RGB colour table of the model that segmented them.
        params: The parameters the call ran with (alpha, thresholds, outputs).
        groups: The serving model's class groups (``ClassGroups``), or None.
    """

    pairs: List[Any]
    palette: np.ndarray
    params: NodeParams
    groups: Any = None


class SegmentationWorker:
    """Runs the two stages for a node's cameras until :meth:`stop`.

    Args:
        cameras: The node's :class:`~.camera_io.CameraIO` objects, by camera index.
        slots: Where the subscription callbacks leave each camera's newest frame.
        stats: Per-camera counters and stage times, by camera index.
        model: The :class:`~.model_holder.ModelHolder` (``acquire``/``release``).
        params: Returns the node's current parameters.
        logger: The node's logger.
        stamp_age: Seconds from a header's stamp to now on the node's clock (``None``: unset).
        running: Whether the ROS context still runs (a failure after a signal is quiet).
    """

    def __init__(self, cameras: List[Any], slots: LatestFrameSlots, stats: List[CameraStats],
                 model: Any, params: Callable[[], NodeParams], logger: Any,
                 stamp_age: Callable[[Any], Optional[float]],
                 running: Callable[[], bool]) -> None:
        self.cameras = cameras
        self.slots = slots
        self.stats = stats
        self._model = model
        self._params = params
        self._logger = logger
        self._stamp_age = stamp_age
        self._running = running
        #: Inference calls, frames segmented and the largest batch, for ``/diagnostics``.
        self.counters: Dict[str, int] = {'inference_calls': 0, 'frames_segmented': 0,
                                         'largest_batch': 0}
        self._palettes: Dict[int, np.ndarray] = {}
        self._smoothers = CameraSmoothers()
        self._handoff: 'queue.Queue[InferredCall]' = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # counters, smoothers, the last frame published
        self._turn = threading.Condition()  # when a stream may take frames (see _take)
        self._streams = 1  # of the model that served last
        self._taking = False
        self._busy = 0  # calls in progress
        self._last_start = 0.0
        self._call_s = 0.0  # recent seconds per call (moving average)
        self._published_arrival: Dict[int, float] = {}  # camera -> arrival of its last output
        self._threads = [threading.Thread(target=self._publish_loop,
                                          name='segmentation_publish', daemon=True)]
        self._add_stream()

    def _add_stream(self) -> threading.Thread:
        index = len(self._threads) - 1
        thread = threading.Thread(target=self._infer_loop, args=(index,),
                                  name=f'segmentation_infer_{index}', daemon=True)
        self._threads.append(thread)
        return thread

    @property
    def call_seconds(self) -> float:
        """Recent seconds per inference call (a moving average; 0 before the first call): a
        stream starts no sooner than this over the number of streams after another."""
        with self._turn:
            return self._call_s

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop both stages; waits up to ``timeout`` s for the frames in progress."""
        self._stop.set()
        self.slots.close()
        with self._turn:
            self._turn.notify_all()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    # Stage 1 ---------------------------------------------------------------------------------
    def _infer_loop(self, index: int) -> None:
        while not self._stop.is_set():
            if index >= self._streams:  # the serving model runs fewer streams
                self._stop.wait(POLL_S)
                continue
            frames = self._take()
            if not frames:
                continue
            started = time.perf_counter()
            inferred = False
            try:
                inferred = self._infer(frames, self._params())  # params as of now
            except Exception as exc:  # never let one batch stop the node
                if not self._running():  # SIGINT/SIGTERM arrived mid-frame: stop quietly
                    break
                self._fail([f.camera for f in frames], exc)
            finally:
                self.slots.finished(frames)
                self._call_done(time.perf_counter() - started if inferred else None)

    def _take(self) -> List[Frame]:
        """This stream's next frames (latest frame wins), or ``[]`` after :data:`POLL_S`.

        One stream takes at a time, and while another call runs, no sooner than
        ``1/streams`` of a call's duration after the last start."""
        with self._turn:
            while not self._stop.is_set():
                wait = 0.0
                if self._taking:
                    wait = POLL_S
                elif self._busy:
                    wait = self._last_start + self._call_s / self._streams - time.monotonic()
                if wait <= 0.0:
                    self._taking = True
                    break
                self._turn.wait(min(wait, POLL_S))
            else:
                return []
        frames: List[Frame] = []
        try:
            streams, cameras = self._streams, len(self.cameras)
            frames = self.slots.take(timeout=POLL_S, batch_wait=self._params().batch_wait,
                                     limit=-(-cameras // streams) if streams > 1 else None)
        finally:
            with self._turn:
                self._taking = False
                if frames:
                    self._busy += 1
                    self._last_start = time.monotonic()
                self._turn.notify_all()
        return frames

    def _call_done(self, seconds: Optional[float]) -> None:
        """A stream's call ended; ``seconds`` it took, None when it ran no inference (its
        frames skipped or rejected), which leaves the call duration the stagger uses as it is."""
        with self._turn:
            self._busy -= 1
            if seconds is not None:
                self._call_s = seconds if not self._call_s else \
                    0.7 * self._call_s + 0.3 * seconds
            self._turn.notify_all()

    def _serve_streams(self, streams: int) -> None:
        """Run ``streams`` stage-1 threads from now on (started as needed, idle beyond)."""
        with self._turn:
            self._streams = max(1, streams)
            while len(self._threads) - 1 < self._streams and not self._stop.is_set():
                self._add_stream().start()

    def _infer(self, frames: List[Frame], p: NodeParams) -> bool:
        """Decode, infer and hand over ``frames``; whether an inference call ran."""
        switches = {s.name: getattr(p, s.name) for s in SPECS if s.name.startswith('publish_')}
        work = [item for item in (self._decode(frame, switches, p) for frame in frames)
                if item is not None]
        if not work:
            return False
        serving = self._model.acquire()
        if serving is None:
            self._logger.warning(f'no model loaded ({self._model.error}); frames dropped',
                                 throttle_duration_sec=THROTTLE_S)
            for item in work:
                self.stats[item.camera].frame_dropped()
            return False
        try:
            if serving.segmenter.streams != self._streams:
                self._serve_streams(serving.segmenter.streams)
            palette = self._palette(serving.segmenter.label_set)
            t0 = time.perf_counter()
            for group, pairs in self._segment(serving, work, p):  # smallest size first
                self.slots.charge([item.camera for item in group], time.perf_counter() - t0)
                if pairs:  # published as soon as done
                    self._hand_over(InferredCall(pairs, palette, p, serving.groups))
                t0 = time.perf_counter()
        finally:
            self._model.release()
        return True

    def _decode(self, frame: Frame, switches: Dict[str, bool],
                p: NodeParams) -> Optional[WorkItem]:
        """The frame ready for inference, or None (skipped: nobody listens; or rejected)."""
        camera = self.cameras[frame.camera]
        wanted = camera.wanted(switches)
        if not wanted.any():
            self.stats[frame.camera].frame_skipped()
            return None
        t0 = time.perf_counter()
        try:
            frame.msg = camera.deserialize(frame.msg)
            decode = compressed_to_color if p.compressed else image_to_color
            image = decode(frame.msg, p.max_input_pixels)
        except (ConversionError, RuntimeError, TypeError, ValueError) as exc:
            self.stats[frame.camera].frame_rejected(str(exc))
            self._logger.warning(f'{camera.topic}: frame rejected: {shorten(exc)}',
                                 throttle_duration_sec=THROTTLE_S)
            return None
        return WorkItem(frame, image, wanted, time.perf_counter() - t0)

    def _segment(self, serving: Any, work: List[WorkItem], p: NodeParams
                 ) -> Iterator[Tuple[List[WorkItem], List[Tuple[WorkItem, Any]]]]:
        """Each inference call's frames and their ``(work item, SegmentationResult)`` pairs, as
        each call returns (the Segmenter's grouping: one size and channel order, smallest
        first). A failed call of several frames is retried frame by frame; a frame that fails
        alone is counted as rejected and has no pair, and the next call still runs."""
        groups = serving.groups
        group_confidence = groups is not None and groups.needs_confidence
        if self._smoothers.weight != p.temporal_smoothing:
            self._smoothers.set_weight(p.temporal_smoothing)

        def run(items: List[WorkItem]) -> Iterator[GroupResult]:
            return serving.segmenter.segment_groups(
                [w.image for w in items],
                confidence=[w.outputs.needs_confidence(p.points_confidence)
                            or (w.outputs.groups and group_confidence) for w in items],
                confidence_threshold=p.confidence_threshold,
                smooth=[self._smoother(w) for w in items] if self._smoothers.enabled else None)
        for call in run(work):
            items = [work[i] for i in call.indices]
            if call.error is None:
                self._count(len(items))
                yield items, list(zip(items, call.results))
                continue
            if not self._running():  # SIGINT/SIGTERM arrived mid-frame: stop quietly
                return
            if len(items) == 1:
                self._fail([items[0].camera], call.error)
                yield items, []
                continue
            self._logger.warning(f'batch failed ({shorten(call.error)}); retrying frame by '
                                 'frame', throttle_duration_sec=THROTTLE_S)
            pairs = []
            for item in items:
                for alone in run([item]):  # one frame: one call
                    if alone.error is None:
                        self._count(1)
                        pairs.append((item, alone.results[0]))
                    else:
                        self.stats[item.camera].frame_rejected(
                            f'{type(alone.error).__name__}: {alone.error}')
            yield items, pairs

    def _count(self, frames: int) -> None:
        """Count one inference call of ``frames`` frames for ``/diagnostics``."""
        with self._lock:
            self.counters['inference_calls'] += 1
            self.counters['frames_segmented'] += frames
            self.counters['largest_batch'] = max(self.counters['largest_batch'], frames)

    def _smoother(self, item: WorkItem) -> Callable[[np.ndarray], np.ndarray]:
        """``item``'s camera's moving average, as the Segmenter's per-image hook."""
        header = item.header
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)

        def smooth(logits: np.ndarray) -> np.ndarray:
            with self._lock:  # streams finish in any order; one update at a time
                return self._smoothers.update(str(item.camera), logits, stamp,
                                              str(header.frame_id), logits=True)
        return smooth

    def _hand_over(self, call: InferredCall) -> None:
        """Give ``call`` to stage 2, waiting while it still publishes the previous one."""
        while not self._stop.is_set():
            try:
                self._handoff.put(call, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def _palette(self, label_set: Any) -> np.ndarray:
        """The label set's colour table, made once per label set."""
        key = id(label_set)
        if key not in self._palettes:
            self._palettes = {key: label_set.palette()}  # one model serves at a time
        return self._palettes[key]

    # Stage 2 ---------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        while not self._stop.is_set():
            try:
                call = self._handoff.get(timeout=POLL_S)
            except queue.Empty:
                continue
            for item, result in call.pairs:
                try:
                    self._publish(item, result, call)
                except Exception as exc:  # one frame's outputs, never the node
                    if not self._running():
                        return
                    self._fail([item.camera], exc)

    def _publish(self, item: WorkItem, result: Any, call: InferredCall) -> None:
        """Render ``item``'s wanted outputs, then publish them with its header (not when a
        newer frame of its camera went out first: another stream finished earlier)."""
        p, outputs = call.params, item.outputs
        arrived = item.frame.received
        with self._lock:
            if arrived < self._published_arrival.get(item.camera, float('-inf')):
                self.stats[item.camera].frame_superseded()
                return
            self._published_arrival[item.camera] = arrived
        t0 = time.perf_counter()
        if outputs.color:
            result.color = colorize_labels(result.labels, call.palette)
        if outputs.overlay:  # published bgr8: blended in the frame's order, then BGR
            result.overlay = blend_overlay(item.image.pixels, result.color, p.overlay_alpha,
                                           item.image.bgr, out_bgr=True)
        groups = None
        if outputs.groups and call.groups is not None:
            groups = call.groups.group_ids(result.labels, result.confidence)
        camera = self.cameras[item.camera]
        cloud = self._cloud(camera, item.header, result, p) if outputs.points else None
        t1 = time.perf_counter()
        camera.publish(item.header, result, outputs, cloud, groups)
        t2 = time.perf_counter()
        stages = dict(result.timings, decode=item.decode_s, render=t1 - t0, publish=t2 - t1)
        self.stats[item.camera].frame_published(stages, self._stamp_age(item.header))

    def _cloud(self, camera: Any, header: Any, result: Any, p: NodeParams) -> Any:
        """The frame's PointCloud2, or None (reason logged, counted) when depth is missing or
        unfit; an implausible camera_info is counted on its own."""
        counts = camera.depth.counts
        try:
            cloud = camera.depth.cloud(
                header, result.labels, result.confidence if p.points_confidence else None,
                p.depth_stamp_tolerance, p.depth_wait)
            counts.add('clouds')
            return cloud
        except (LookupError, ValueError) as exc:  # DepthMismatch, ConversionError
            counts.add('clouds_missing')
            if isinstance(exc, BadCameraInfo):
                counts.add('camera_info_rejected')
            self._logger.warning(f'{camera.topic}: no point cloud: {shorten(exc, 600)}',
                                 throttle_duration_sec=THROTTLE_S)
            return None

    def _fail(self, cameras: List[int], exc: Exception) -> None:
        reason = shorten(f'{type(exc).__name__}: {exc}')
        self._logger.error(f'segmentation failed: {reason}', throttle_duration_sec=THROTTLE_S)
        for camera in cameras:
            self.stats[camera].frame_rejected(reason)
