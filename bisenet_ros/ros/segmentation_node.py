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

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any, List, Optional

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from .node import NODE_NAME, SegmentationLifecycleNode, SegmentationNode
from .params import params_file_problem, ParamError


#: Most seconds the stop (worker, model, ROS entities) may take after SIGINT/SIGTERM. Past it
#: (a model still loading at start-up, a large frame in flight, a reload) the process releases
#: its Fast DDS shared memory and temp files itself and exits without waiting.
STOP_BUDGET_S = 0.5


def run_node(args: Optional[List[str]] = None, lifecycle: bool = False) -> int:
    """Run the node until SIGINT/SIGTERM; returns 0, or 2 for invalid parameters.

    rclpy's own signal handlers (SIGINT and SIGTERM) shut the context down and spinning ends
    (the Python handlers they chain to do nothing: no KeyboardInterrupt can land half-way
    through the stop, whatever number of signals comes), and the node is stopped within
    :data:`STOP_BUDGET_S`. The node is built (model loaded) on a thread, so a signal during
    start-up is seen at once too. Temp files (exported models) go to a folder of this process,
    removed at exit whatever is in flight. A missing or malformed ``--params-file`` (or any
    argument rcl refuses) is one line on stderr and exit code 2.
    """
    argv = sys.argv if args is None else list(args)
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == '--params-file']
    problem = next((p for f in files if (p := params_file_problem(f))), None)
    if problem is None:
        # A signal between the DDS participant's creation and rclpy's handlers would kill the
        # process with its shared memory left: hold SIGINT/SIGTERM until the handlers are in.
        stops = {signal.SIGINT, signal.SIGTERM}
        held = threading.current_thread() is threading.main_thread()
        if held:
            signal.pthread_sigmask(signal.SIG_BLOCK, stops)
            _absorb_stop_signals()
        try:
            rclpy.init(args=args)
        except Exception as exc:  # rcl's RCLError: the arguments cannot be parsed
            problem = f'cannot start: {" ".join(str(exc).split())}'
        finally:
            if held:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    if problem is not None:
        sys.stderr.write(f'[ERROR] [{NODE_NAME}]: {problem}\n')
        return 2
    temp_root = tempfile.mkdtemp(prefix=f'{NODE_NAME}_')  # after rclpy.init: signals handled
    os.environ['TMPDIR'] = tempfile.tempdir = temp_root
    try:
        return _serve(lifecycle)
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)


def _serve(lifecycle: bool) -> int:
    built: dict = {}

    def build() -> None:
        try:
            built['node'] = SegmentationLifecycleNode() if lifecycle else SegmentationNode()
        except BaseException as exc:  # handed to the main thread
            built['error'] = exc

    builder = threading.Thread(target=build, name='node_start', daemon=True)
    code = 0
    try:
        builder.start()
        while builder.is_alive() and rclpy.ok():
            builder.join(0.05)
        if 'error' in built:
            raise built['error']
        if 'node' in built and rclpy.ok():
            # One thread: the input callbacks only store bytes; inference has its own thread.
            executor = SingleThreadedExecutor()
            executor.add_node(built['node'])
            while rclpy.ok():  # short waits: a signal is seen within 0.1 s, not at the next timer
                executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ParamError, ParameterException) as exc:
        rclpy.logging.get_logger(NODE_NAME).error(f'invalid parameters: {exc}')
        code = 2
    except Exception:
        # A signal can shut the context down between two waits of the executor, which then
        # fails to build its wait set; that is a normal stop, anything else is not.
        if rclpy.ok():
            raise
    finally:
        starting = builder.is_alive()
        if not starting and _stop(built.get('node'), STOP_BUDGET_S):
            if hasattr(rclpy, 'try_shutdown'):
                rclpy.try_shutdown()  # no-op when the signal handler already shut down
            elif rclpy.ok():
                rclpy.shutdown()
        else:
            rclpy.logging.get_logger(NODE_NAME).warning(
                'stopped while starting (model loading): exiting without waiting for it'
                if starting else f'stop took longer than {STOP_BUDGET_S} s (a frame or a '
                'model load in flight): exiting without waiting for it')
        _release_shared_memory()  # a no-op once the participant is destroyed
    return code


def _stop(node: Optional[Any], budget: float) -> bool:
    """Stop and destroy ``node`` on a thread; whether that finished within ``budget`` s."""
    if node is None:
        return True

    def stop() -> None:
        node.shutdown()
        node.destroy_node()
    stopper = threading.Thread(target=stop, name='node_stop', daemon=True)
    stopper.start()
    stopper.join(budget)
    return not stopper.is_alive()


def _release_shared_memory() -> None:
    """Unlink this process's own Fast DDS shared-memory segments: those whose ``<name>_el``
    liveness file this process holds locked (``/proc/locks``), for an exit that could not
    destroy the participant (a signal during start-up, a stop over budget). Segments of other
    participants, and the domain's port queues, are never touched."""
    try:
        with open('/proc/locks') as locks:
            ours = {int(f[5].rsplit(':', 1)[1]) for f in (line.split() for line in locks)
                    if len(f) > 5 and f[4] == str(os.getpid())}
        names = os.listdir('/dev/shm')
    except (OSError, ValueError, IndexError):  # not Linux
        return
    for name in names:
        if not name.startswith(('fastdds_', 'fastrtps_')) or '_port' in name \
                or not name.endswith('_el'):
            continue
        path = os.path.join('/dev/shm', name)
        try:
            if os.stat(path).st_ino in ours:
                os.unlink(path[:-3])
                os.unlink(path)
        except OSError:
            pass


def _absorb_stop_signals() -> None:
    """Make Python's own SIGINT/SIGTERM handlers do nothing (main thread only, before
    ``rclpy.init``). rclpy's handlers, installed over them, shut the context down and then
    chain to these; Python's default would raise KeyboardInterrupt wherever the main thread
    is, and a second signal (``ros2 launch`` without a terminal sends two) would then break
    the stop half-way, leaving temp files and shared memory behind. After ``rclpy.shutdown``
    puts these back, further signals are absorbed until the process exits."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _absorb)


def _absorb(signum: int, frame: Any) -> None:
    """A Python signal handler that does nothing (see :func:`_absorb_stop_signals`)."""


def main(args: Optional[List[str]] = None) -> None:
    """Process entry point (``ros2 run``, console script, ``python -m``): never returns.

    Every ROS and model resource is released by :func:`run_node`; the process then exits at
    once instead of letting the interpreter garbage-collect torch's object graph at exit, which
    takes seconds and would break the 2 s stop budget on SIGINT/SIGTERM.
    """
    _exit(run_node(args))


def lifecycle_main(args: Optional[List[str]] = None) -> None:
    """Entry point of ``segmentation_lifecycle_node`` (the managed node); never returns."""
    _exit(run_node(args, lifecycle=True))


def _exit(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == '__main__':
    if '--lifecycle' in sys.argv[1:]:  # python -m bisenet_ros.ros.segmentation_node --lifecycle
        sys.argv.remove('--lifecycle')
        lifecycle_main()
    else:
        main()
