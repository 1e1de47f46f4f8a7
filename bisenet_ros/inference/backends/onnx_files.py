"""The model files of an ONNX-reading backend (ONNX Runtime, OpenVINO), per network size.

One implementation for both runtimes: a user's ``.onnx`` file is run as given (quantized to int8
into the artifact cache when asked); a PyTorch model is exported into the artifact cache
(:class:`bisenet_ros.export.artifacts.RuntimeArtifacts`), once with dynamic H and W when its size
policy allows (inputs then padded to multiples of 32), else per input size. A checkpoint whose
graph is cached already is not loaded at all (no torch import): :meth:`ModelFiles.use_checkpoint`
finds the graph by the checkpoint's digest and the backend reads what it needs from the graph.
At most
:data:`.base.MAX_CACHED_SIZES` sizes stay open; the least recently used is dropped (its runtime
state through ``on_drop``; the cached file stays for the next start).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

from ..model_file import identify, load_module, ModelFile
from .base import LruCache, MAX_CACHED_SIZES, Size

LOG = logging.getLogger(__name__)


class ModelFiles:
    """Size -> model file for one backend instance.

    Args:
        runtime: Runtime name and version (part of every cache key).
        precision: ``'fp32'``, ``'fp16'`` or ``'int8'`` of the files made here.
        calibration_images: int8: folder or images; ``None``: the packaged demo frames.
        int8_layers: int8: ``'compute'`` or ``'all'``.
        on_drop: Called with the size key (``None``: any size) whose file is dropped.
    """

    def __init__(self, runtime: str, precision: str, calibration_images: Any,
                 int8_layers: Optional[str], on_drop: Callable[[Optional[Size]], None]) -> None:
        from ...export.artifacts import RuntimeArtifacts
        self.runtime = runtime
        self.artifacts = RuntimeArtifacts(runtime, 'fp32' if precision == 'bf16' else precision,
                                          calibration_images, int8_layers)
        self._files = LruCache(MAX_CACHED_SIZES, lambda size, path: self._dropped(size))
        self._on_drop = on_drop
        self.module: Any = None
        self._loader: Optional[Callable[[], Any]] = None
        self._model_id: Optional[str] = None
        #: Inputs are padded to multiples of 32 for a dynamic-H/W graph exported here.
        self.pad = False

    def open_model(self, info: ModelFile, label_set: Any, input_size: Optional[Size],
                   dynamic_size: bool, backend: str) -> Tuple[int, Any, Optional[Size]]:
        """Serve a module or checkpoint: ``(num_classes, label_set, fixed size or None)``.

        Without ``input_size`` int8 is one dynamic-H/W graph too (calibrated at
        :data:`~bisenet_ros.export.artifacts.INT8_CALIBRATION_SIZE`), or one graph per size
        seen, each calibrated at its size. A checkpoint whose graph is cached is described from
        the graph's metadata, without loading it.
        """
        fixed = input_size is not None
        size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
        if info.kind == 'checkpoint' and info.path is not None:
            cached = self.use_checkpoint(info.path, label_set,
                                         lambda: load_module(info, label_set), size,
                                         dynamic_size)
            graph = identify(cached) if cached is not None else None
            if graph is not None and graph.num_classes:
                return graph.num_classes, graph.label_set, size
        module = load_module(info, label_set)
        self.use_module(module, dynamic_size=dynamic_size and not fixed)
        return int(module.num_classes), getattr(module, 'label_set', None), size

    def use_file(self, path: Path, size: Optional[Size]) -> None:
        """Run ``path`` (a user's file, or its cached int8 copy) at ``size`` (``None``: any)."""
        self._files.put(size, path)

    def use_module(self, module: Any, dynamic_size: bool = True) -> None:
        """Export ``module`` on demand; one dynamic-H/W graph when ``dynamic_size`` and its
        size policy allows."""
        from ...export.artifacts import supports_dynamic_size
        self.module = module
        self.pad = dynamic_size and supports_dynamic_size(module)

    def use_checkpoint(self, path: Path, label_set: Any, load: Callable[[], Any],
                       size: Optional[Size], dynamic_size: bool = True) -> Optional[Path]:
        """Serve the checkpoint ``path`` (loaded by ``load()`` only when a graph must be made).

        Returns the cached graph at ``size`` (``None``: the dynamic-H/W graph, when allowed)
        if there is one, and then pads for a dynamic graph; ``None`` when nothing is cached
        (the caller then loads the module and calls :meth:`use_module`).
        """
        from ...export.artifacts import checkpoint_id
        self._model_id = checkpoint_id(path, label_set)
        self._loader = load
        if size is None and not dynamic_size:
            return None
        found = self.artifacts.lookup(self._model_id, size)
        if found is not None:
            self.pad = size is None
            self._files.put(size, found)
        return found

    def key(self, size: Optional[Size]) -> Optional[Size]:
        """The file key of network input ``size``: ``None`` when one file takes any size."""
        return None if self.pad or None in self._files else size

    def file_for(self, size: Optional[Size]) -> Path:
        """The model file for ``size``, exported (and quantized) from the module if needed."""
        key = self.key(size)
        path = self._files.get(key)
        if path is not None:
            return path
        if self.module is None and self._loader is not None:
            self.module = self._loader()
        if self.module is None:
            raise RuntimeError(f'{self.runtime}: the backend is closed')
        path = self.artifacts.for_module(self.module, key, self._model_id)
        self._files.put(key, path)
        return path

    def quantized(self, path: Path, size: Optional[Size], label_set: Any) -> Path:
        """The cached int8 copy of the fp32 file ``path`` with input ``size`` (``None``:
        dynamic H, W)."""
        return self.artifacts.quantized(path, size, label_set)

    def _dropped(self, size: Optional[Size]) -> None:
        self._on_drop(size)
        LOG.info('%s: dropped the model at %s (least recently used)', self.runtime,
                 'any size' if size is None else f'{size[0]}x{size[1]}')

    def clear(self) -> None:
        """Forget every file and the module."""
        self._files.clear()
        self.module = None
        self._loader = None
