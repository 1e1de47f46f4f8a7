"""``segmentation_node``: BiSeNet V2 semantic segmentation of camera images (a thin rclpy layer).

Subscribes to ``image_topics`` (sensor_msgs/Image, or CompressedImage on ``<topic>/compressed``),
segments the newest frame of every camera on a worker thread (cameras of one size share a
batched call; each call's outputs go out as soon as it returns; worker time is shared fairly
between cameras, see :mod:`.work` and :mod:`.frame_slots`), and publishes
``<output_prefix>/{mask, color_mask, overlay, confidence, confidence_mono8, camera_info}``
(one camera) or ``<output_prefix>/<camera>/...`` (several), with ``depth_topic`` the organized
semantic cloud ``<output_prefix>/points``, the class metadata on the latched
``<output_prefix>/class_info`` (JSON) and ``<output_prefix>/label_info`` (vision_msgs/LabelInfo,
when importable), and the node's health on ``/diagnostics``.

Run: ``ros2 run bisenet_ros segmentation_node --ros-args -p model_path:=/path/model.pt`` or
``python -m bisenet_ros.ros.segmentation_node --ros-args ...``. The managed (lifecycle) node:
``ros2 run bisenet_ros segmentation_lifecycle_node`` (or ``python -m ... --lifecycle``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Dict, List, Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rcl_interfaces.msg import SetParametersResult
from diagnostic_msgs.msg import DiagnosticArray

from ..image_conversions import compressed_to_color, ConversionError, image_to_color
from .camera_io import CameraIO, camera_names
from .frame_slots import Frame, LatestFrameSlots
from .model_holder import ModelHolder, precheck
from .node_stats import CameraStats, diagnostic_status
from .params import (descriptor, NodeParams, ParamError, reload_needed,
                     SPEC_BY_NAME, SPECS)
from .process import run_main
from .work import inference_groups, WorkItem

NODE_NAME = 'segmentation_node'


class _Segmentation:
    """The node's behaviour, shared by the plain and the lifecycle node (mixed into a Node).

    Stages: :meth:`_declare` (parameters), :meth:`_configure` (load the model),
    :meth:`_activate` (subscriptions, publishers, worker), :meth:`_deactivate` (stop them),
    :meth:`_cleanup` (free the model).
    """

    def _declare(self) -> None:
        for spec in SPECS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.params = NodeParams.from_values(
            {spec.name: self.get_parameter(spec.name).value for spec in SPECS})
        self.model = ModelHolder(self.get_logger(), self._on_reloaded)
        #: The parameters whose model settings serve (or, before any model loaded, were set
        #: at start): a failed reload puts the parameters back to these.
        self._settled = self.params
        self._revert: Optional[tuple] = None  # (failed params, params to put back)
        self._reverting = False
        self._revert_trigger = self.create_guard_condition(self._revert_failed_reload)
        self._configured = False
        self.cameras: List[CameraIO] = []
        self._worker: Optional[threading.Thread] = None
        self._params_lock = threading.Lock()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self) -> Optional[str]:
        """Load the model; returns the error (the node still runs without a model)."""
        self._configured = True
        self._settled = self.params
        return self.model.load(self.params)

    def _activate(self) -> None:
        p = self.params
        self.slots = LatestFrameSlots(len(p.image_topics), p.max_rate)
        self.stats = [CameraStats(t) for t in p.image_topics]
        names = camera_names(list(p.image_topics))
        group = MutuallyExclusiveCallbackGroup()
        self.cameras = [
            CameraIO(self, i, topic,
                     p.output_prefix if len(p.image_topics) == 1
                     else f'{p.output_prefix}/{names[i]}',
                     p.compressed, p.use_camera_info, self._on_frame, group, p.depth_topic)
            for i, topic in enumerate(p.image_topics)]
        self.model.create_metadata_publishers(self, p.output_prefix)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self._batches = {'inference_calls': 0, 'frames_segmented': 0, 'largest_batch': 0}
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name='segmentation_worker',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'segmenting {", ".join(c.topic for c in self.cameras)} -> '
            f'{", ".join(c.publishers["mask"].topic_name for c in self.cameras)}')

    def _deactivate(self) -> None:
        """Stop the worker (waits for the frame in progress) and drop topics and timer."""
        if self._worker is None:
            return
        self._stop.set()
        self.slots.close()
        self._worker.join(timeout=30.0)
        self._worker = None
        self.destroy_timer(self._diag_timer)
        self.destroy_publisher(self._diag_pub)
        self.model.destroy_metadata_publishers(self)
        for camera in self.cameras:
            camera.destroy()
        self.cameras = []

    def _cleanup(self) -> None:
        """Free the model (and its backend's memory, files and engines)."""
        self._configured = False
        self.model.close()

    def shutdown(self) -> None:
        """Stop the worker thread (waits for the frame in progress) and free the model."""
        self._deactivate()
        self._cleanup()

    # Parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, changed: List[Any]) -> SetParametersResult:
        """Validate and apply a change; a model change is only checked here (path, kind,
        label set: milliseconds) and then loaded on the model's loader thread."""
        ours = {param.name: param.value for param in changed if param.name in SPEC_BY_NAME}
        if not ours:
            return SetParametersResult(successful=True)
        with self._params_lock:
            try:
                new = self.params.with_changes(ours)
            except ParamError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            if self._configured and not self._reverting and reload_needed(self.params, new):
                error = precheck(new)
                if error is not None:
                    serving = self.model.serving
                    if serving is not None:
                        error += f'; still serving {serving.model_path}'
                    self.get_logger().error(error)
                    return SetParametersResult(successful=False, reason=error)
                self._revert = None
                self.model.request(new)
            if new.max_rate != self.params.max_rate and self._worker is not None:
                self.slots.set_rate(new.max_rate)
            self.params = new
        return SetParametersResult(successful=True)

    def _on_reloaded(self, p: NodeParams, error: Optional[str]) -> None:
        """Loader thread: the reload to ``p`` finished. After a failure, the model parameters
        are put back to the serving model's values (on the executor, see
        :meth:`_revert_failed_reload`), so ``ros2 param get`` never names a model that is not
        serving."""
        with self._params_lock:
            if error is None:
                self._settled = p
                return
            if reload_needed(self.params, p):
                return  # a newer reload was asked for since
            self._revert = (p, self._settled)
        self._revert_trigger.trigger()

    def _revert_failed_reload(self) -> None:
        """Executor thread: set the model parameters back after a failed reload. The
        parameter callback sees ``_reverting`` and applies the values without a reload."""
        with self._params_lock:
            revert, self._revert = self._revert, None
            if revert is None or reload_needed(self.params, revert[0]):
                return
            values = {s.name: getattr(revert[1], s.name) for s in SPECS if s.applies == 'reload'}
        from rclpy.parameter import Parameter
        self._reverting = True
        try:
            results = self.set_parameters(
                [Parameter(k, value=list(v) if isinstance(v, tuple) else v)
                 for k, v in values.items()])
        finally:
            self._reverting = False
        failed = [r.reason for r in results if not r.successful]
        if failed:
            self.get_logger().error(f'could not set the model parameters back: {failed}')
        else:
            self.get_logger().warning(
                f'model reload failed; parameters set back to the serving model '
                f'{revert[1].model_path} (see /diagnostics for the reason)')

    # Input ------------------------------------------------------------------------------------
    def _on_frame(self, index: int, msg: Any) -> None:
        self.stats[index].last_input_time = time.monotonic()
        self.slots.put(index, msg)

    # Worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            p = self.params
            frames = self.slots.take(timeout=0.2, batch_wait=p.batch_wait)
            if not frames:
                continue
            try:
                self._process(frames, self.params)  # as of now: may have changed while waiting
            except Exception as exc:  # never let one batch stop the node
                if not self.context.ok():  # SIGINT/SIGTERM arrived mid-frame: stop quietly
                    break
                self.get_logger().error(f'segmentation failed: {type(exc).__name__}: {exc}',
                                        throttle_duration_sec=5.0)
                for frame in frames:
                    self.stats[frame.camera].frame_rejected(f'{type(exc).__name__}: {exc}')

    def _process(self, frames: List[Frame], p: NodeParams) -> None:
        switches = {s.name: getattr(p, s.name) for s in SPECS if s.name.startswith('publish_')}
        work = [item for item in (self._decode(frame, switches, p) for frame in frames)
                if item is not None]
        if not work:
            return
        segmenter = self.model.acquire()
        if segmenter is None:
            self.get_logger().warning(f'no model loaded ({self.model.error}); frames dropped',
                                      throttle_duration_sec=5.0)
            for item in work:
                self.stats[item.camera].frame_dropped()
            return
        try:
            for group in inference_groups(work, segmenter.input_size):
                t0 = time.perf_counter()
                self._segment_and_publish(segmenter, group, p)  # published as soon as done
                self.slots.charge([item.camera for item in group], time.perf_counter() - t0)
        finally:
            self.model.release()

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
            image, is_bgr = decode(frame.msg, p.max_input_pixels)
        except (ConversionError, RuntimeError, TypeError, ValueError) as exc:
            self.stats[frame.camera].frame_rejected(str(exc))
            self.get_logger().warning(f'{camera.topic}: frame rejected: {exc}',
                                      throttle_duration_sec=5.0)
            return None
        return WorkItem(frame, image, is_bgr, wanted, time.perf_counter() - t0)

    def _segment_and_publish(self, segmenter: Any, group: List[WorkItem],
                             p: NodeParams) -> None:
        """One inference call for ``group`` (one size and channel order), then its outputs."""
        is_bgr = group[0].is_bgr

        def run(items: List[WorkItem]) -> List[Any]:
            return segmenter.segment_batch(
                [w.image for w in items], bgr=is_bgr,
                color=any(w.outputs.color for w in items),
                overlay=any(w.outputs.overlay for w in items),
                confidence=any(w.outputs.needs_confidence(p.points_confidence) for w in items),
                overlay_alpha=p.overlay_alpha, confidence_threshold=p.confidence_threshold)
        try:
            results = run(group)
            pairs = list(zip(group, results))
            self._batches['inference_calls'] += 1
            self._batches['frames_segmented'] += len(group)
            self._batches['largest_batch'] = max(self._batches['largest_batch'], len(group))
        except Exception as exc:
            if len(group) == 1:
                raise
            self.get_logger().warning(f'batch failed ({exc}); retrying frame by frame',
                                      throttle_duration_sec=5.0)
            pairs = []
            for item in group:
                try:
                    pairs.append((item, run([item])[0]))
                except Exception as one:
                    self.stats[item.camera].frame_rejected(f'{type(one).__name__}: {one}')
        for item, result in pairs:
            t0 = time.perf_counter()
            camera = self.cameras[item.camera]
            cloud = self._cloud(camera, item.header, result, p) if item.outputs.points \
                else None
            camera.publish(item.header, result, item.outputs, is_bgr, cloud)
            stages = dict(result.timings, decode=item.decode_s,
                          publish=time.perf_counter() - t0)
            self.stats[item.camera].frame_published(stages, self._age(item.header))

    def _cloud(self, camera: CameraIO, header: Any, result: Any, p: NodeParams) -> Any:
        """The frame's PointCloud2, or None (reason logged) when depth is missing or unfit."""
        try:
            return camera.depth.cloud(  # type: ignore[union-attr]
                header, result.labels, result.confidence if p.points_confidence else None,
                p.depth_stamp_tolerance, p.depth_wait)
        except (LookupError, ValueError) as exc:  # DepthMismatch, ConversionError
            self.get_logger().warning(f'{camera.topic}: no point cloud: {exc}',
                                      throttle_duration_sec=5.0)
            return None

    def _age(self, header: Any) -> Optional[float]:
        """Seconds from the header stamp to now (None for an unset stamp)."""
        stamp = header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            return None
        now = self.get_clock().now().nanoseconds
        return (now - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e9

    # Diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        p = self.params
        hardware_id = self.get_fully_qualified_name()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        level, message, values = self.model.report()
        values = values + [(k, str(v)) for k, v in self._batches.items()]
        array.status.append(diagnostic_status(f'{NODE_NAME}: model', hardware_id, level,
                                              message, values))
        for i, camera in enumerate(self.cameras):
            level, message, values = self.stats[i].report(
                self.slots.received[i], self.slots.dropped[i], p.stale_timeout,
                p.warn_input_age, p.future_stamp_tolerance, p.past_stamp_limit)
            array.status.append(diagnostic_status(f'{NODE_NAME}: {camera.topic}', hardware_id,
                                                  level, message, values))
        self._diag_pub.publish(array)


class SegmentationNode(_Segmentation, Node):
    """The segmentation node; see the module docstring for topics and ``params.SPECS``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._configure()  # an error is logged and reported; the node still runs
        self._activate()


class SegmentationLifecycleNode(_Segmentation, LifecycleNode):
    """The same node as a managed (lifecycle) node, starting unconfigured.

    ``configure`` loads the model (and builds engines), ``activate`` creates the subscriptions
    and publishers and starts segmenting, ``deactivate`` removes them, ``cleanup`` frees the
    model. A model that fails to load fails ``configure``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()

    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        error = self._configure()
        if error is not None:
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: Any) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: Any) -> TransitionCallbackReturn:
        self.shutdown()
        return TransitionCallbackReturn.SUCCESS


def main(args: Optional[List[str]] = None) -> None:
    """Entry point of ``segmentation_node`` (console script, ``ros2 run``, ``python -m``);
    never returns. The process plumbing is :mod:`bisenet_ros.ros.process`."""
    run_main(SegmentationNode, args)


def lifecycle_main(args: Optional[List[str]] = None) -> None:
    """Entry point of ``segmentation_lifecycle_node`` (the managed node); never returns."""
    run_main(SegmentationLifecycleNode, args)


if __name__ == '__main__':
    if '--lifecycle' in sys.argv[1:]:  # python -m bisenet_ros.ros.segmentation_node --lifecycle
        sys.argv.remove('--lifecycle')
        lifecycle_main()
    else:
        main()
