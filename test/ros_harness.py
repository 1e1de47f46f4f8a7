"""Test tooling for the ROS layer: talk to the node as a user's graph would (not shipped).

Used by the node tests and ``benchmarks/bench_node_latency.py`` (which puts ``test/`` on
``sys.path``). The node itself runs in a child process started by the package's
:class:`bisenet_ros.ros.clients.node_process.NodeProcess` (or by ``ros2 launch``:
:class:`LaunchProcess`); :class:`Probe` is an rclpy node in the calling process, spun by a
:class:`bisenet_ros.ros.clients.spin_thread.SpinThread`, that publishes images and records every
message of the topics it listens to. A callback of the probe that raises fails the test that
waits, with that exception.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from bisenet_ros.image_conversions import fill_image
from bisenet_ros.ros.clients.node_process import ros_env
from bisenet_ros.ros.clients.spin_thread import SpinThread


def overlay_env(domain_id: int, prefix: Path) -> Dict[str, str]:
    """Environment of a user whose workspace overlay (colcon install prefix) is sourced:
    ``prefix``'s Python packages first, its ``share/`` and the venv's on AMENT_PREFIX_PATH."""
    env = ros_env(domain_id)
    site = sorted(Path(prefix).glob('lib/python3*/site-packages'))
    env['PYTHONPATH'] = os.pathsep.join(str(p) for p in site)
    env['AMENT_PREFIX_PATH'] = os.pathsep.join([str(prefix), sys.prefix])
    env['PATH'] = os.pathsep.join([str(Path(sys.executable).parent), env.get('PATH', '')])
    return env


def ros2(args: Sequence[str], env: Mapping[str, str],
         timeout: float = 60.0) -> 'subprocess.CompletedProcess[str]':
    """Run the ``ros2`` CLI of this venv (``ros2 param set ...``), never using a daemon."""
    cmd = [str(Path(sys.executable).with_name('ros2'))] + list(args)
    if args[0] in ('param', 'lifecycle', 'node') or args[:2] == ['topic', 'list']:
        cmd += ['--no-daemon', '--spin-time', '5']  # time to discover the graph
    return subprocess.run(cmd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)


class LaunchProcess:
    """``ros2 launch <args>`` in its own session and process group, as a user starts it.

    :meth:`stop` sends SIGINT to the whole group (what Ctrl-C does in a terminal), so the
    node gets one from the terminal and one from launch.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str],
                 command: Optional[Sequence[str]] = None) -> None:
        """``command``, when given, replaces ``ros2 launch <args>`` (e.g. a ``bash -c`` line
        that sources the venv's activate script first)."""
        self.command = list(command) if command is not None else \
            [str(Path(sys.executable).with_name('ros2')), 'launch'] + list(args)
        self.log_path = Path(tempfile.mkstemp(prefix='ros2_launch_', suffix='.log')[1])
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(env), start_new_session=True)
        self.returncode: Optional[int] = None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def wait(self, timeout: float) -> int:
        self.returncode = self.proc.wait(timeout)
        self._log.close()
        return self.returncode

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT to the process group, wait; SIGKILL the group after ``timeout``."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode
        if not self._log.closed:
            self._log.close()
        return self.returncode


class Probe:
    """An rclpy node (own context, own executor thread) that publishes and records messages."""

    def __init__(self, domain_id: int, name: str = 'segmentation_probe') -> None:
        self.spin = SpinThread(name, domain_id)
        self.node = self.spin.node
        self.received: Dict[str, List[Any]] = {}
        self.receive_times: Dict[str, List[float]] = {}
        self._publishers: Dict[str, Any] = {}

    def subscribe(self, msg_type: Any, topic: str, latched: bool = False,
                  on_message: Optional[Callable[[Any], None]] = None,
                  qos: Any = None) -> None:
        """Record every message of ``topic`` (reliable; transient local when ``latched``;
        ``qos`` given: that profile)."""
        qos = qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched
                                else DurabilityPolicy.VOLATILE)
        self.received.setdefault(topic, [])
        self.receive_times.setdefault(topic, [])

        def callback(msg: Any) -> None:
            now = time.monotonic()
            with self.spin.lock:
                self.received[topic].append(msg)
                self.receive_times[topic].append(now)
            if on_message is not None:
                on_message(msg)
        self.node.create_subscription(msg_type, topic, callback, qos)

    def publisher(self, msg_type: Any, topic: str, qos: Any = None) -> Any:
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(
                msg_type, topic, qos or QoSProfile(depth=5,
                                                   reliability=ReliabilityPolicy.RELIABLE))
        return self._publishers[topic]

    def image_msg(self, pixels: np.ndarray, encoding: str, frame_id: str = 'camera',
                  stamp_ns: Optional[int] = None) -> Any:
        from sensor_msgs.msg import Image
        msg = fill_image(Image(), pixels, encoding) if encoding in (
            'mono8', 'mono16', 'rgb8', 'bgr8') else Image()
        msg.header.frame_id = frame_id
        ns = self.node.get_clock().now().nanoseconds if stamp_ns is None else stamp_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
        return msg

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` is true or ``timeout`` seconds passed (re-checked after
        every message); raises what a callback of the probe raised."""
        return self.spin.wait_for(predicate, timeout)

    def reply_to(self, pub: Any, msg: Any, topic: str, timeout: float = 60.0,
                 resend_every: float = 1.0, log: Optional[Callable[[], str]] = None) -> Any:
        """Publish ``msg`` with ``pub`` until a message with its header stamp arrives on
        ``topic`` (recorded by :meth:`subscribe`); returns that message.

        One publish is not enough at start: the node drops frames before its model is loaded
        and skips outputs whose subscriber it has not matched yet (discovery is not symmetric),
        and best-effort frames can be lost while discovery settles.

        Raises:
            AssertionError: no reply within ``timeout`` seconds (with the end of ``log()``,
                the node's log, when given).
        """
        stamp = stamp_ns(msg)

        def reply() -> Any:
            return next((m for m in self.received[topic] if stamp_ns(m) == stamp), None)
        deadline = time.monotonic() + timeout
        while True:
            pub.publish(msg)
            left = deadline - time.monotonic()
            if self.wait_for(lambda: reply() is not None, max(0.0, min(resend_every, left))):
                with self.spin.lock:
                    return reply()
            if time.monotonic() >= deadline:
                raise AssertionError(f'no message on {topic} for the frame stamped {stamp} ns '
                                     f'in {timeout} s\n' + (log()[-3000:] if log else ''))

    def wait_for_subscribers(self, topic: str, count: int = 1, timeout: float = 30.0) -> bool:
        pub = self._publishers[topic]
        return self.wait_for(lambda: pub.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 30.0) -> bool:
        return self.wait_for(lambda: self.node.count_publishers(topic) >= count, timeout)

    def set_parameters(self, values: Mapping[str, Any], node: str = '/segmentation_node',
                       timeout: float = 60.0) -> List[Any]:
        """Call ``<node>/set_parameters``; returns one SetParametersResult per value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        return self._call(SetParameters, f'{node}/set_parameters', request, timeout).results

    def get_parameters(self, names: Sequence[str], node: str = '/segmentation_node',
                       timeout: float = 20.0) -> Dict[str, Any]:
        """Call ``<node>/get_parameters``; returns name -> Python value."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python
        response = self._call(GetParameters, f'{node}/get_parameters',
                              GetParameters.Request(names=list(names)), timeout)
        return {n: parameter_value_to_python(v) for n, v in zip(names, response.values)}

    def _call(self, srv_type: Any, name: str, request: Any, timeout: float) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f'service {name} not available after {timeout} s')
            future = client.call_async(request)
            if not self.wait_for(future.done, timeout):
                raise TimeoutError(f'service {name} did not answer in {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self.spin.close()


def connected_probe(domain_id: int, node: Any, image_topic: str, outputs: Sequence[str],
                    timeout: float = 90.0) -> Probe:
    """A probe that publishes ``sensor_msgs/Image`` on ``image_topic`` and records the Image
    topics ``outputs`` and ``/diagnostics``, returned once ``node`` (a NodeProcess) subscribes to
    ``image_topic`` and publishes every output; otherwise the assertion shows the node's log."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    probe = Probe(domain_id)
    try:
        for topic in outputs:
            probe.subscribe(Image, topic)
        probe.subscribe(DiagnosticArray, '/diagnostics')
        probe.publisher(Image, image_topic)
        assert probe.wait_for_subscribers(image_topic, timeout=timeout), node.log()[-3000:]
        for topic in outputs:
            assert probe.wait_for_publishers(topic, timeout=30), node.log()[-3000:]
    except BaseException:
        probe.close()
        raise
    return probe


def stamp_ns(msg: Any) -> int:
    """``msg.header.stamp`` in nanoseconds (how tests match an output to its input)."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def model_status(diagnostics: Any) -> Tuple[int, str, Dict[str, str]]:
    """``(level, message, values)`` of the node's model status in one DiagnosticArray
    (level as an int: 0 OK, 1 WARN, 2 ERROR)."""
    status = next(s for s in diagnostics.status if s.name.endswith(': model'))
    return status.level[0], status.message, {kv.key: kv.value for kv in status.values}


def write_random_checkpoint(path: Path, seed: int = 0, num_classes: int = 11) -> Path:
    """A CamVid-labelled BiSeNet V2 checkpoint with random weights whose masks vary.

    Every convolution gets He-normal weights and every batch norm the identity, which makes the
    predicted classes differ across an image (the default initialisation predicts one class
    everywhere). For tests and benchmarks only: the predictions mean nothing. Imports torch.
    """
    import torch
    from bisenet_ros.labels import load_label_set
    from bisenet_ros.model import build_model, save_checkpoint
    generator = torch.Generator().manual_seed(seed)
    model = build_model('bisenetv2', num_classes=num_classes).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
    label_set = load_label_set('camvid')
    if label_set.num_classes != num_classes:
        from bisenet_ros.labels import LabelSet
        label_set = LabelSet.generic(num_classes)
    save_checkpoint(path, model, label_set)
    return Path(path)


def pattern_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A structured ``(H, W, 3)`` uint8 image (gradients and noise), deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 2 + 17 * seed) % 256, (y * 3) % 256, ((x + y) * 5) % 256], -1)
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
