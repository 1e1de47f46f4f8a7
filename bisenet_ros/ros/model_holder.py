"""The node's current :class:`~bisenet_ros.inference.Segmenter`: loading, hot reload, health.

A reload builds the new Segmenter first and swaps it in only when that succeeded, so a bad model
leaves the old one serving while the error is logged, returned (to reject the parameter change)
and shown on ``/diagnostics``. The worker holds :meth:`ModelHolder.acquire` while it infers, so
the old model is closed only after the frame in progress.
"""

from __future__ import annotations

import json
from pathlib import Path
import threading
from typing import Any, List, Optional, Tuple

from rclpy.node import Node
from std_msgs.msg import String

from ..resources import default_model_path
from .camera_io import LATCHED_QOS
from .node_stats import ERROR, OK, WARN
from .params import NodeParams


def _missing_model_message(path: str) -> str:
    message = (f"model file '{path}' not found; pass a model with "
               '--ros-args -p model_path:=/path/to/model.pt (or model_path in the params '
               'file, or the launch argument model:=/path/to/model.pt)')
    if path == str(default_model_path()):
        message += '; this is the default (packaged CamVid) model, absent from this install'
    return message


class ModelHolder:
    """Owns the Segmenter; thread-safe swap on reload."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._infer_lock = threading.Lock()
        self._segmenter: Any = None
        self._params: Optional[NodeParams] = None
        #: Why no model is serving (None while one is).
        self.error: Optional[str] = 'no model loaded yet'
        #: Why the last reload failed while the previous model kept serving.
        self.reload_error: Optional[str] = None
        self._metadata_pubs: List[Tuple[str, Any]] = []

    def load(self, p: NodeParams) -> Optional[str]:
        """Load the model ``p`` describes and swap it in; returns the error or ``None``."""
        path = p.model_path
        segmenter = None
        if not Path(path).is_file():
            error = _missing_model_message(path)
        else:
            try:
                from ..inference import Segmenter
                from ..inference.threads import set_torch_threads
                set_torch_threads(p.threads)  # the node owns its process: torch's pool is ours
                segmenter = Segmenter(path, backend=p.backend, input_size=p.model_input_size,
                                      device=p.device, precision=p.precision,
                                      label_set=p.label_set or None, threads=p.threads or None)
                error = None
            except Exception as exc:  # any load failure must leave the node serving
                error = (f"cannot load model '{path}' (backend {p.backend}, device {p.device}): "
                         f'{type(exc).__name__}: {exc}')
        if error is not None:
            if self._segmenter is not None:
                error += f'; still serving {self._params.model_path}'  # type: ignore[union-attr]
                self.reload_error = error
            else:
                self.error = error
            self._logger.error(error)
            return error
        with self._infer_lock:
            old, self._segmenter, self._params = self._segmenter, segmenter, p
            self.error = self.reload_error = None
            if old is not None:
                old.close()
        ls = segmenter.label_set
        self._logger.info(f'model {path}: backend {segmenter.backend_name}, label set {ls.name} '
                          f'({ls.num_classes} classes)')
        return None

    def acquire(self) -> Any:
        """The serving Segmenter (or None), locked against swaps until :meth:`release`."""
        self._infer_lock.acquire()
        if self._segmenter is None:
            self._infer_lock.release()
        return self._segmenter

    def release(self) -> None:
        self._infer_lock.release()

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
        self._metadata_pubs = [('json', node.create_publisher(String, f'{prefix}/class_info',
                                                              LATCHED_QOS))]
        try:
            from vision_msgs.msg import LabelInfo
            self._metadata_pubs.append(('label_info', node.create_publisher(
                LabelInfo, f'{prefix}/label_info', LATCHED_QOS)))
        except ImportError:
            pass
        self._clock = node.get_clock()
        self.publish_metadata()

    def destroy_metadata_publishers(self, node: Node) -> None:
        for _, pub in self._metadata_pubs:
            node.destroy_publisher(pub)
        self._metadata_pubs = []

    def publish_metadata(self) -> None:
        data = self.metadata()
        if data is None:
            return
        for kind, pub in self._metadata_pubs:
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
        """``(level, message, key/values)`` for ``/diagnostics``."""
        seg, p = self._segmenter, self._params
        if seg is None:
            return ERROR, self.error or 'no model', [('error', self.error or '')]
        ls = seg.label_set
        size = seg.input_size
        values = [('model_path', p.model_path), ('backend', seg.backend_name),  # type: ignore
                  ('device', p.device), ('precision', p.precision),  # type: ignore
                  ('label_set', ls.name), ('num_classes', str(ls.num_classes)),
                  ('input_size', 'native' if size is None else f'{size[0]}x{size[1]}')]
        if self.reload_error:
            return WARN, f'model reload failed: {self.reload_error}', \
                values + [('error', self.reload_error)]
        return OK, f'{seg.backend_name} serving {Path(p.model_path).name}', values  # type: ignore

    def close(self) -> None:
        with self._infer_lock:
            if self._segmenter is not None:
                self._segmenter.close()
                self._segmenter = None
