"""The segmentation node in a child process: start it with parameters, stop it, keep its log.

Used by ``bisenet eval-bag --start-node`` and by the tests and benchmarks. :class:`NodeProcess`
starts ``python -m bisenet_ros.ros.segmentation_node --ros-args -p ...`` with its own
environment (:func:`ros_env`) and stops it with SIGINT; the exit code and log are kept. No rclpy
import here: the child is the ROS process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Mapping, Optional, Sequence


def ros_env(domain_id: int, fastdds_profile: Optional[str] = None,
            log_dir: Optional[str] = None) -> Dict[str, str]:
    """Environment for a child on ``domain_id``, traffic kept on this machine.

    ``log_dir`` becomes ROS_LOG_DIR unless the environment already names one (nothing is
    created here: a caller that makes a folder for it removes it).
    """
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if log_dir is not None and not env.get('ROS_LOG_DIR'):
        env['ROS_LOG_DIR'] = str(log_dir)
    env['PYTHONUNBUFFERED'] = '1'
    # The child imports this very copy of the package, installed or not.
    root = str(Path(__file__).resolve().parents[3])
    env['PYTHONPATH'] = os.pathsep.join([root] + [p for p in env.get('PYTHONPATH', '')
                                                  .split(os.pathsep) if p])
    if fastdds_profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(fastdds_profile)
    return env


class NodeProcess:
    """The node in a child process; use as a context manager or call :meth:`stop`.

    Without ROS_LOG_DIR (in the environment or ``env``) the node's ROS log files go to a
    temporary folder removed by :meth:`stop` (its output is in :attr:`log_path` anyway).
    """

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
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ros_log_dir: Optional[str] = None
        if not (env or {}).get('ROS_LOG_DIR') and not os.environ.get('ROS_LOG_DIR'):
            self._ros_log_dir = tempfile.mkdtemp(prefix='bisenet_node_log_')
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(ros_env(domain_id, fastdds_profile,
                                                      self._ros_log_dir), **(env or {})))
        self.returncode: Optional[int] = None

    def log(self) -> str:
        """Everything the node printed so far (stdout and stderr)."""
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
                    # The spacing of repeated signals is what a caller asks for (a user
                    # pressing Ctrl-C twice), not a wait for an event.
                    time.sleep(interval)
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._log.close()
        if self._ros_log_dir is not None:
            shutil.rmtree(self._ros_log_dir, ignore_errors=True)
            self._ros_log_dir = None
        return self.returncode

    def __enter__(self) -> 'NodeProcess':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
