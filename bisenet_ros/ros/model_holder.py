"""The node's current :class:`~bisenet_ros.inference.Segmenter`: loading, hot reload, health.

Every candidate is checked completely before it serves (tensor layout, class count against
the label set, a test run on one small frame: :mod:`bisenet_ros.inference.model_check`).
Start-up (:meth:`ModelHolder.load`) loads on the calling thread. A reload at runtime
(:meth:`ModelHolder.request`) returns at once: a loader thread builds the new Segmenter (export,
engine build, test run) while the old one keeps serving, then swaps the two atomically. Requests
that arrive while one is loading replace each other, so the last one asked for is the one that
ends up loaded. A candidate that fails leaves the old model serving; the error is logged, kept
for ``/diagnostics`` and handed to the node's ``on_reloaded`` callback. The worker holds
:meth:`ModelHolder.acquire` while it infers, so the old model is closed only after the frame in
progress.
"""

from __future__ import annotations

import json
from pathlib import Path
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

from rclpy.node import Node
from std_msgs.msg import String

from ..resources import default_model_path
from .camera_io import LATCHED_QOS
from .node_stats import ERROR, OK, WARN
from .params import NodeParams

#: ``on_reloaded(params, error)``: called on the loader thread after each finished request
#: that no newer request replaced; ``error`` is ``None`` when ``params``' model now serves.
ReloadCallback = Callable[[NodeParams, Optional[str]], None]


def _missing_model_message(path: str) -> str:
    message = (f"model file '{path}' not found; pass a model with "
               '--ros-args -p model_path:=/path/to/model.pt (or model_path in the params '
               'file, or the launch argument model:=/path/to/model.pt)')
    if path == str(default_model_path()):
        message += '; this is the default (packaged CamVid) model, absent from this install'
    return message


def precheck(p: NodeParams) -> Optional[str]:
    """What can be told about ``p``'s model without loading it (milliseconds): the file exists,
    its kind is known, the label set loads. Returns the reason it cannot serve, or ``None``."""
    from ..user_files import check_file, MissingFileError
    try:
        check_file(p.model_path, 'model file')  # every OS error a refusal, within a time bound
    except MissingFileError:
        return _missing_model_message(p.model_path)
    except ValueError as exc:  # a folder, FIFO, no permission, NUL byte, name too long, ...
        return str(exc)
    try:
        from ..inference.model_file import kind_of
        kind_of(p.model_path)
        if p.label_set:
            from ..labels import load_label_set
            load_label_set(p.label_set)
    except Exception as exc:  # whatever the value, a refusal with the reason, never a crash
        return f"cannot load model '{p.model_path}': {type(exc).__name__}: {exc}"
    return None


class ModelHolder:
    """Owns the Segmenter; loads candidates off the caller's thread and swaps them in."""

    def __init__(self, logger: Any, on_reloaded: Optional[ReloadCallback] = None) -> None:
        self._logger = logger
        self._on_reloaded = on_reloaded
        self._infer_lock = threading.Lock()
        self._segmenter: Any = None
        self._params: Optional[NodeParams] = None
        #: Why no model is serving (None while one is).
        self.error: Optional[str] = 'no model loaded yet'
        #: Why the last reload failed while the previous model kept serving.
        self.reload_error: Optional[str] = None
        self._metadata_pubs: List[Tuple[str, Any]] = []
        # Loader thread state, guarded by _cond.
        self._cond = threading.Condition()
        self._pending: Optional[NodeParams] = None
        self._loading: Optional[NodeParams] = None
        self._loading_since = 0.0
        self._loader: Optional[threading.Thread] = None
        self._closed = False
        #: Why the last asynchronous reload failed (None after one that succeeded).
        self.last_reload_error: Optional[str] = None

    # Loading ---------------------------------------------------------------------------------
    def load(self, p: NodeParams) -> Optional[str]:
        """Load the model ``p`` describes on this thread and swap it in; returns the error."""
        with self._cond:
            self._closed = False  # lifecycle: configure again after cleanup
        return self._finish(p, *self._build(p))

    def request(self, p: NodeParams) -> None:
        """Load ``p``'s model on the loader thread; returns at once.

        A request made while another loads replaces any request still waiting, so two reloads
        in quick succession end with the last one asked for.
        """
        with self._cond:
            if self._closed:
                return
            self._pending = p
            if self._loader is None:  # the thread clears it under this lock when it ends
                self._loader = threading.Thread(target=self._load_loop, name='model_loader',
                                                daemon=True)
                self._loader.start()
            self._cond.notify_all()

    def _load_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    self._loader = None
                    return
                p, self._pending = self._pending, None
                self._loading, self._loading_since = p, time.monotonic()
            assert p is not None
            self._logger.info(f'reloading the model: {p.model_path} (backend {p.backend}, '
                              f'device {p.device}); the current model serves meanwhile')
            segmenter, error = self._build(p)
            with self._cond:
                superseded = self._pending is not None or self._closed
            if superseded:  # a newer request (or close) came while this one loaded
                if segmenter is not None:
                    segmenter.close()
                self._logger.info(f'model {p.model_path} loaded but a newer reload was asked '
                                  'for; it is dropped' if error is None else
                                  f'model {p.model_path} not loaded ({error}); a newer reload '
                                  'was asked for')
                outcome = None
            else:
                outcome = self._finish(p, segmenter, error)
            with self._cond:
                self._loading = None
                if not superseded:
                    self.last_reload_error = outcome
                self._cond.notify_all()
            if not superseded and self._on_reloaded is not None:
                try:
                    self._on_reloaded(p, outcome)
                except Exception as exc:  # e.g. the node is being destroyed: never a traceback
                    self._logger.warning(f'after the reload of {p.model_path}: '
                                         f'{type(exc).__name__}: {exc}')

    def _build(self, p: NodeParams) -> Tuple[Any, Optional[str]]:
        """A new Segmenter for ``p`` (or None) and the reason it could not be made."""
        error = precheck(p)
        if error is not None:
            return None, error
        segmenter = None
        try:
            from ..inference import Segmenter
            from ..inference.model_check import check_candidate
            segmenter = Segmenter(p.model_path, backend=p.backend,
                                  input_size=p.model_input_size, device=p.device,
                                  precision=p.precision, label_set=p.label_set or None,
                                  threads=p.threads or None)
            check_candidate(segmenter)  # layout, classes vs label set, a test run
        except Exception as exc:  # any load or check failure must leave the node serving
            if segmenter is not None:
                segmenter.close()
            return None, (f"cannot load model '{p.model_path}' (backend {p.backend}, device "
                          f'{p.device}): {type(exc).__name__}: {exc}')
        return segmenter, None

    def _finish(self, p: NodeParams, segmenter: Any, error: Optional[str]) -> Optional[str]:
        """Swap ``segmenter`` in, or record ``error``; returns the error."""
        if error is not None:
            if self._segmenter is not None:
                error += f'; still serving {self._params.model_path}'  # type: ignore[union-attr]
                self.reload_error = error
            else:
                self.error = error
            self._logger.error(error)
            return error
        with self._infer_lock:
            from ..inference.threads import set_torch_threads
            set_torch_threads(p.threads)  # the node owns its process: torch's pool is ours
            old, self._segmenter, self._params = self._segmenter, segmenter, p
            self.error = self.reload_error = None
            if old is not None:
                old.close()
        ls = segmenter.label_set
        self._logger.info(f'model {p.model_path}: backend {segmenter.backend_name}, label set '
                          f'{ls.name} ({ls.num_classes} classes)')
        try:
            self.publish_metadata()
        except Exception as exc:  # publishers destroyed meanwhile (shutdown)
            self._logger.warning(f'class metadata not published: {type(exc).__name__}: {exc}')
        return None

    # Serving ---------------------------------------------------------------------------------
    def acquire(self) -> Any:
        """The serving Segmenter (or None), locked against swaps until :meth:`release`."""
        self._infer_lock.acquire()
        if self._segmenter is None:
            self._infer_lock.release()
        return self._segmenter

    def release(self) -> None:
        self._infer_lock.release()

    @property
    def serving(self) -> Optional[NodeParams]:
        """The parameters of the serving model, ``None`` without one."""
        return self._params if self._segmenter is not None else None

    def metadata(self) -> Optional[dict]:
        """Class names, RGB colours, ignore id and model facts, or None without a model."""
        seg, p = self._segmenter, self._params
        if seg is None or p is None:
            return None
        ls = seg.label_set
        return {'label_set': ls.name, 'num_classes': ls.num_classes,
                'class_names': list(ls.class_names),
                'colors': [list(map(int, c)) for c in ls.colors],
                'ignore_index': int(ls.ignore_index),
                'mask_encoding': 'mono8' if max(ls.num_classes - 1, ls.ignore_index) <= 255
                else 'mono16',
                'model_path': p.model_path, 'backend': seg.backend_name}

    def create_metadata_publishers(self, node: Node, prefix: str) -> None:
        """Latched ``<prefix>/class_info`` (JSON) and, when importable, vision_msgs LabelInfo."""
        pubs = [('json', node.create_publisher(String, f'{prefix}/class_info', LATCHED_QOS))]
        try:
            from vision_msgs.msg import LabelInfo
            pubs.append(('label_info', node.create_publisher(
                LabelInfo, f'{prefix}/label_info', LATCHED_QOS)))
        except ImportError:
            pass
        self._clock = node.get_clock()
        self._metadata_pubs = pubs
        self.publish_metadata()

    def destroy_metadata_publishers(self, node: Node) -> None:
        pubs, self._metadata_pubs = self._metadata_pubs, []
        for _, pub in pubs:
            node.destroy_publisher(pub)

    def publish_metadata(self) -> None:
        data = self.metadata()
        if data is None:
            return
        for kind, pub in list(self._metadata_pubs):
            if kind == 'json':
                pub.publish(String(data=json.dumps(data)))
            else:
                from vision_msgs.msg import LabelInfo, VisionClass
                msg = LabelInfo()
                msg.header.stamp = self._clock.now().to_msg()
                msg.class_map = [VisionClass(class_id=i, class_name=name)
                                 for i, name in enumerate(data['class_names'])]
                msg.threshold = float(self._params.confidence_threshold)  # type: ignore
                pub.publish(msg)

    def report(self) -> Tuple[int, str, List[Tuple[str, str]]]:
        """``(level, message, key/values)`` for ``/diagnostics``.

        Keys ``reload`` (``idle``, ``in progress`` or ``failed``), ``reload_target`` and
        ``reload_seconds`` say what the loader thread does; ``error`` the last failure.
        """
        seg, p = self._segmenter, self._params
        with self._cond:
            target = self._pending or self._loading
            since = self._loading_since
            failed = self.last_reload_error
        reload_values = [('reload', 'in progress' if target is not None
                          else 'failed' if failed else 'idle')]
        if failed:
            reload_values.append(('last_reload_error', failed))
        if target is not None:
            reload_values += [('reload_target', target.model_path),
                              ('reload_seconds', f'{time.monotonic() - since:.1f}')]
        reloading = '' if target is None else f'; reloading {target.model_path}'
        if seg is None:
            message = (self.error or 'no model') + reloading
            return ERROR, message, [('error', self.error or '')] + reload_values
        ls = seg.label_set
        size = seg.input_size
        values = [('model_path', p.model_path), ('backend', seg.backend_name),  # type: ignore
                  ('device', p.device), ('precision', p.precision),  # type: ignore
                  ('label_set', ls.name), ('num_classes', str(ls.num_classes)),
                  ('input_size', 'native' if size is None else f'{size[0]}x{size[1]}')]
        values += reload_values
        if self.reload_error:
            return WARN, f'model reload failed: {self.reload_error}{reloading}', \
                values + [('error', self.reload_error)]
        return OK, f'{seg.backend_name} serving {Path(p.model_path).name}{reloading}', \
            values  # type: ignore

    def close(self) -> None:
        """Stop the loader (a load in progress is dropped when it ends) and free the model."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        with self._infer_lock:
            if self._segmenter is not None:
                self._segmenter.close()
                self._segmenter = None
