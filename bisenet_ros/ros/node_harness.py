"""Run the segmentation node in a child process and talk to it, as a user's graph would.

Used by the node tests and ``benchmarks/bench_node_latency.py``: :class:`NodeProcess` starts
``python -m bisenet_ros.ros.segmentation_node --ros-args -p ...`` with its own environment and
stops it with SIGINT (the exit code and log are kept); :class:`Probe` is an rclpy node in the
calling process that publishes images and records every message of the topics it listens to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from .image_conversions import fill_image
from .polling import wait_until


def ros_env(domain_id: int, fastdds_profile: Optional[str] = None) -> Dict[str, str]:
    """Environment for a child on ``domain_id``, traffic kept on this machine."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bisenet_node_log_'))
    env['PYTHONUNBUFFERED'] = '1'
    # The child imports this very copy of the package, installed or not.
    root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = os.pathsep.join([root] + [p for p in env.get('PYTHONPATH', '')
                                                  .split(os.pathsep) if p])
    if fastdds_profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(fastdds_profile)
    return env


class NodeProcess:
    """The node in a child process; use as a context manager or call :meth:`stop`."""

    def __init__(self, params: Mapping[str, Any], domain_id: int,
                 extra_args: Sequence[str] = (), fastdds_profile: Optional[str] = None,
                 log_path: Optional[Path] = None,
                 env: Optional[Mapping[str, str]] = None) -> None:
        cmd = [sys.executable, '-m', 'bisenet_ros.ros.segmentation_node', '--ros-args']
        for name, value in params.items():
            cmd += ['-p', f'{name}:={json.dumps(value)}']
        cmd += list(extra_args)
        self.command = cmd
        self.log_path = Path(log_path or tempfile.mkstemp(prefix='segmentation_node_',
                                                          suffix='.log')[1])
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(ros_env(domain_id, fastdds_profile),
                                              **(env or {})))
        self.returncode: Optional[int] = None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0, repeat: int = 1,
             interval: float = 0.01) -> int:
        """Send ``sig`` (``repeat`` times, ``interval`` s apart), wait; kill after ``timeout``.

        Returns the exit code.
        """
        if self.proc.poll() is None:
            for i in range(repeat):
                if i:
                    time.sleep(interval)
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._log.close()
        return self.returncode

    def __enter__(self) -> 'NodeProcess':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


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

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.command = [str(Path(sys.executable).with_name('ros2')), 'launch'] + list(args)
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
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.received: Dict[str, List[Any]] = {}
        self.receive_times: Dict[str, List[float]] = {}
        self._lock = threading.Lock()
        self._publishers: Dict[str, Any] = {}
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # context shut down
            pass

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
            with self._lock:
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
        """Poll ``predicate`` until true or ``timeout`` seconds passed."""
        return wait_until(predicate, timeout, self._lock, poll_s=0.02)

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
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not future.done():
                raise TimeoutError(f'service {name} did not answer in {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5.0)


def write_random_checkpoint(path: Path, seed: int = 0, num_classes: int = 11) -> Path:
    """A CamVid-labelled BiSeNet V2 checkpoint with random weights whose masks vary.

    Every convolution gets He-normal weights and every batch norm the identity, which makes the
    predicted classes differ across an image (the default initialisation predicts one class
    everywhere). For tests and benchmarks only: the predictions mean nothing. Imports torch.
    """
    import torch
    from ..labels import load_label_set
    from ..model import build_model, save_checkpoint
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
        from ..labels import LabelSet
        label_set = LabelSet.generic(num_classes)
    save_checkpoint(path, model, label_set)
    return Path(path)


def pattern_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A structured ``(H, W, 3)`` uint8 image (gradients and noise), deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 2 + 17 * seed) % 256, (y * 3) % 256, ((x + y) * 5) % 256], -1)
    return np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
