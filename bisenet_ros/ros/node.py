"""The segmentation node's ROS face: parameters, the lifecycle transitions, ``/diagnostics``.

The rooms it is built from: :mod:`.params` (the parameter table), :mod:`.model_holder` (the
serving model, hot reload; plain Python), :mod:`.worker` (take, decode, infer, publish: the
frame pipeline), :mod:`.camera_io` (one camera's topics), :mod:`.metadata` (the latched class
topics) and :mod:`.process` (signals, temp folder, shared memory, exit).

The parameter callback only checks each value's type, range and shape: it never opens a file.
A change of a model setting is handed to the loader thread, whose verdict (file, kind, label
set, the load itself) arrives through the reload status on ``/diagnostics``; a failed reload sets
the parameters back to the serving model's values.
"""

from __future__ import annotations

import threading
import time
from typing import Any, List, Optional, TYPE_CHECKING

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rcl_interfaces.msg import SetParametersResult
from diagnostic_msgs.msg import DiagnosticArray

from .camera_io import CameraIO
from .frame_slots import LatestFrameSlots
from .metadata import MetadataPublisher
from .model_holder import ModelHolder
from .node_stats import CameraStats, diagnostic_status
from .params import (descriptor, NODE_NAME, NodeParams, ParamError, reload_needed,
                     SPEC_BY_NAME, SPECS)
from .topics import camera_names
from .worker import SegmentationWorker

# The mixin is used over Node and LifecycleNode; type checkers see it as a Node.
if TYPE_CHECKING:
    _NodeBase = Node
else:
    _NodeBase = object


class _Segmentation(_NodeBase):
    """The node's behaviour, shared by the plain and the lifecycle node (mixed into a Node).

    Stages: :meth:`_declare` (parameters), :meth:`_configure` (load the model),
    :meth:`_activate` (subscriptions, publishers, worker), :meth:`_deactivate` (stop them),
    :meth:`_cleanup` (free the model).
    """

    def _declare(self) -> None:
        for spec in SPECS:
            self.declare_parameter(spec.name, spec.default, descriptor(spec))
        self.params = NodeParams.from_values(
            {spec.name: self.get_parameter(spec.name).value for spec in SPECS},
            namespace=self.get_namespace())
        self.model = ModelHolder(self.get_logger(), self._on_reloaded, self._publish_metadata)
        #: The parameters whose model settings serve (or, before any model loaded, were set
        #: at start): a failed reload puts the parameters back to these.
        self._settled = self.params
        self._revert: Optional[tuple] = None  # (failed params, params to put back)
        self._reverting = False
        self._revert_trigger = self.create_guard_condition(self._revert_failed_reload)
        self._configured = False
        self.cameras: List[CameraIO] = []
        self._worker: Optional[SegmentationWorker] = None
        self._metadata: Optional[MetadataPublisher] = None
        self._groups_metadata: Optional[MetadataPublisher] = None
        self._params_lock = threading.Lock()
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self) -> Optional[str]:
        """Load the model; returns the error (the node still runs without a model)."""
        self._configured = True
        self._settled = self.params
        return self.model.load(self.params)

    def _activate(self) -> None:
        p = self.params
        self._slots = slots = LatestFrameSlots(len(p.image_topics), p.max_rate,
                                               **self._rate_clock())
        self.stats = [CameraStats(t) for t in p.image_topics]
        names = camera_names(list(p.image_topics))
        group = MutuallyExclusiveCallbackGroup()
        self.cameras = [
            CameraIO(self, i, topic,
                     p.output_prefix if len(p.image_topics) == 1
                     else f'{p.output_prefix}/{names[i]}',
                     p.compressed, p.use_camera_info, self._on_frame, group, p.depth_topic)
            for i, topic in enumerate(p.image_topics)]
        self._metadata = MetadataPublisher(self, f'{p.output_prefix}/class_info',
                                           f'{p.output_prefix}/label_info')
        self._groups_metadata = MetadataPublisher(self, f'{p.output_prefix}/groups_info',
                                                  f'{p.output_prefix}/groups_label_info')
        self._publish_metadata()
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Health is wall-time health (rates, stalls): a paused simulation still reports.
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics,
                                             clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._worker = SegmentationWorker(self.cameras, slots, self.stats, self.model,
                                          lambda: self.params, self.get_logger(),
                                          self._stamp_age, lambda: self.context.ok())
        self._worker.start()
        self.get_logger().info(
            f'segmenting {", ".join(c.topic for c in self.cameras)} -> '
            f'{", ".join(c.publishers["mask"].topic_name for c in self.cameras)}')

    def _deactivate(self) -> None:
        """Stop the worker (waits for the frame in progress) and drop topics and timer."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        worker.stop(timeout=30.0)
        self.destroy_timer(self._diag_timer)
        self.destroy_publisher(self._diag_pub)
        for metadata in (self._metadata, self._groups_metadata):
            if metadata is not None:
                metadata.destroy()
        self._metadata = self._groups_metadata = None
        for camera in self.cameras:
            camera.destroy()
        self.cameras = []

    def _cleanup(self) -> None:
        """Free the model (and its backend's memory, files and engines); a load in flight is
        dropped when it ends, whatever comes after."""
        self._configured = False
        self.model.close()

    def shutdown(self) -> None:
        """Stop the worker threads (waits for the frame in progress) and free the model."""
        self._deactivate()
        self._cleanup()

    # Parameters -----------------------------------------------------------------------------
    def _on_set_parameters(self, changed: List[Any]) -> SetParametersResult:
        """Validate a change (type, range, shape: no file is opened here) and apply it; a
        model change is loaded, and judged, on the model's loader thread."""
        ours = {param.name: param.value for param in changed if param.name in SPEC_BY_NAME}
        if not ours:
            return SetParametersResult(successful=True)
        with self._params_lock:
            try:
                new = self.params.with_changes(ours, namespace=self.get_namespace())
            except ParamError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            if self._configured and not self._reverting and reload_needed(self.params, new):
                self._revert = None
                self.model.request(new)
            if new.max_rate != self.params.max_rate and self._worker is not None:
                self._worker.slots.set_rate(new.max_rate)
            self.params = new
        self._publish_metadata(new)  # publishes only when the threshold changed
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

    def _publish_metadata(self, p: Optional[NodeParams] = None) -> None:
        """(Re)publish the latched class topics when what they say changed: a model swap, a
        new threshold (``p``: the parameters about to apply)."""
        metadata, groups_metadata = self._metadata, self._groups_metadata
        if metadata is not None:
            metadata.update(self.model.metadata(), (p or self.params).confidence_threshold)
        groups = self.model.groups
        if groups_metadata is not None and groups is not None:
            groups_metadata.update(dict(groups.metadata(), class_map=groups.class_map()),
                                   groups.min_threshold)

    # Input, clock and diagnostics -------------------------------------------------------------
    def _rate_clock(self) -> dict:
        """With ``use_sim_time``, the rate cap runs on the node's (simulated) clock."""
        if not self.get_parameter('use_sim_time').value:
            return {}
        clock = self.get_clock()
        return {'clock': lambda: clock.now().nanoseconds / 1e9}

    def _on_frame(self, index: int, msg: Any) -> None:
        """Subscription callback: keep the frame's bytes in its camera's slot."""
        self.stats[index].last_input_time = time.monotonic()
        depth = self.cameras[index].depth if index < len(self.cameras) else None
        if depth is not None:
            depth.counts.add('colour')
        self._slots.put(index, msg)

    def _stamp_age(self, header: Any) -> Optional[float]:
        """Seconds from the header stamp to now on the node's clock (simulated time with
        ``use_sim_time``); ``None`` for an unset stamp."""
        stamp = header.stamp
        if stamp.sec == 0 and stamp.nanosec == 0:
            return None
        now = self.get_clock().now().nanoseconds
        return (now - (stamp.sec * 1_000_000_000 + stamp.nanosec)) / 1e9

    def _publish_diagnostics(self) -> None:
        worker = self._worker
        if worker is None:
            return
        p = self.params
        hardware_id = self.get_fully_qualified_name()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        level, message, values = self.model.report()
        values = values + [(k, str(v)) for k, v in worker.counters.items()]
        array.status.append(diagnostic_status(f'{NODE_NAME}: model', hardware_id, level,
                                              message, values))
        for i, camera in enumerate(self.cameras):
            level, message, values = self.stats[i].report(
                worker.slots.received[i], worker.slots.dropped[i], p.stale_timeout,
                p.warn_input_age, p.future_stamp_tolerance, p.past_stamp_limit)
            if camera.depth is not None:
                values = values + list(camera.depth.counts.as_values().items())
            array.status.append(diagnostic_status(f'{NODE_NAME}: {camera.topic}', hardware_id,
                                                  level, message, values))
        self._diag_pub.publish(array)


class SegmentationNode(_Segmentation, Node):
    """The segmentation node; see :mod:`bisenet_ros.ros.segmentation_node` for its topics and
    ``params.SPECS`` for its parameters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._configure()  # an error is logged and reported; the node still runs
        self._activate()


class SegmentationLifecycleNode(_Segmentation, LifecycleNode):
    """The same node as a managed (lifecycle) node, starting unconfigured; with the
    ``autostart`` parameter it configures and activates itself.

    ``configure`` loads the model (and builds engines), ``activate`` creates the subscriptions
    and publishers and starts segmenting, ``deactivate`` removes them, ``cleanup`` frees the
    model. A model that fails to load fails ``configure`` (the reason is logged) and leaves the
    node unconfigured.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        if self.params.autostart:
            self._autostart()

    def _autostart(self) -> None:
        """Configure, then activate, through the lifecycle's own transitions (so the state
        machine and ``/transition_event`` see them); a failure is logged, the node stays
        where the failing transition left it."""
        self.get_logger().info('autostart: configuring')
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error('autostart: configure failed; the node stays unconfigured '
                                    '(see the error above)')
            return
        self.get_logger().info('autostart: activating')
        self.trigger_activate()

    def on_configure(self, state: Any) -> TransitionCallbackReturn:
        error = self._configure()
        if error is not None:
            self.get_logger().error(f'configure failed: {error}')
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
