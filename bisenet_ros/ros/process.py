"""Process plumbing of the segmentation node: params files, signals, the temp folder, shared
memory, the allocator (:mod:`bisenet_ros.allocator`) and exit (pure process code; the node
classes live in :mod:`bisenet_ros.ros.segmentation_node`, which hands its classes to
:func:`run_main`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from typing import Any, Callable, List, Optional

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

from ..allocator import keep_large_buffers
from ..limits import LimitError, shorten
from .params import NODE_NAME, ParamError, read_params_file


#: Most seconds the stop (worker, model, ROS entities) may take after SIGINT/SIGTERM. Past it
#: (a model still loading at start-up, a large frame in flight, a reload) the process releases
#: its Fast DDS shared memory and temp files itself and exits without waiting.
STOP_BUDGET_S = 0.5


def run_node(args: Optional[List[str]], build: Callable[[], Any]) -> int:
    """Run the node ``build()`` makes until SIGINT/SIGTERM; returns 0, or 2 for invalid
    parameters (130: interrupted while reading a params file).

    rclpy's own signal handlers (SIGINT and SIGTERM) shut the context down and spinning ends
    (the Python handlers they chain to do nothing: no KeyboardInterrupt can land half-way
    through the stop, whatever number of signals comes), and the node is stopped within
    :data:`STOP_BUDGET_S`. The node is built (model loaded) on a thread, so a signal during
    start-up is seen at once too. Temp files (exported models) go to a folder of this process,
    removed at exit whatever is in flight.

    Each ``--params-file`` is read once (:func:`~bisenet_ros.ros.params.read_params_file`: a
    regular file or a pipe such as ``<(...)``, bounded in size and time), checked, and rcl gets
    a private copy of exactly that text in its place: what was checked is what rcl reads. An
    unreadable, malformed or silent (a FIFO nobody writes to) params file, or any argument rcl
    refuses, is one line on stderr and exit code 2.
    """
    argv = sys.argv if args is None else list(args)
    copies = tempfile.mkdtemp(prefix=f'{NODE_NAME}_params_')
    try:
        try:
            argv, problem = _params_files_copied(argv, copies), None
        except LimitError as exc:
            problem = str(exc)
        except KeyboardInterrupt:
            sys.stderr.write(f'[ERROR] [{NODE_NAME}]: interrupted while reading the params '
                             'file\n')
            return 130
        if problem is None:
            problem = _init(argv)
        if problem is not None:
            sys.stderr.write(f'[ERROR] [{NODE_NAME}]: {shorten(problem, 400)}\n')
            return 2
    finally:
        shutil.rmtree(copies, ignore_errors=True)  # rcl parsed the copies in rclpy.init
    temp_root = tempfile.mkdtemp(prefix=f'{NODE_NAME}_')  # after rclpy.init: signals handled
    os.environ['TMPDIR'] = tempfile.tempdir = temp_root
    try:
        return _serve(build)
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)


def _params_files_copied(argv: List[str], folder: str) -> List[str]:
    """``argv`` with each ``--params-file PATH`` replaced by a copy, in ``folder`` (private to
    this process), of the text read and checked once; :class:`LimitError` for a bad file."""
    out = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg == '--params-file':
            text = read_params_file(argv[i + 1])
            fd, copy = tempfile.mkstemp(prefix='params_', suffix='.yaml', dir=folder)
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(text)
            out[i + 1] = copy
    return out


def _init(argv: List[str]) -> Optional[str]:
    """``rclpy.init`` with ``argv``; the reason rcl refused the arguments, or ``None``."""
    # A signal between the DDS participant's creation and rclpy's handlers would kill the
    # process with its shared memory left: hold SIGINT/SIGTERM until the handlers are in.
    stops = {signal.SIGINT, signal.SIGTERM}
    held = threading.current_thread() is threading.main_thread()
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        _absorb_stop_signals()
    try:
        rclpy.init(args=argv)
    except Exception as exc:  # rcl's RCLError: the arguments cannot be parsed
        return f'cannot start: {" ".join(str(exc).split())}'
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    return None


def _serve(make: Callable[[], Any]) -> int:
    built: dict = {}

    def build() -> None:
        try:
            built['node'] = make()
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


def run_main(build: Callable[[], Any], args: Optional[List[str]] = None) -> None:
    """Process entry point for the node ``build()`` makes (``ros2 run``, console script,
    ``python -m``): never returns.

    Every ROS and model resource is released by :func:`run_node`; the process then exits at
    once instead of letting the interpreter garbage-collect torch's object graph at exit, which
    takes seconds and would break the 2 s stop budget on SIGINT/SIGTERM. Before anything else,
    freed frame buffers are kept for reuse (:func:`~bisenet_ros.allocator.keep_large_buffers`).
    """
    keep_large_buffers()
    _exit(run_node(args, build))


def _exit(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
