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

Plain Python (no rclpy): the node hands it a logger and callbacks. Every :meth:`close`
(lifecycle ``cleanup``, shutdown) starts a new generation: a load begun before it is dropped
when it ends, even when a later :meth:`load` (``configure``) opened the holder again.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Tuple

from ..resources import default_model_path
from .node_stats import ERROR, OK, WARN
from .params import NodeParams

#: ``on_reloaded(params, error)``: called on the loader thread after each finished request
#: that no newer request replaced; ``error`` is ``None`` when ``params``' model now serves.
ReloadCallback = Callable[[NodeParams, Optional[str]], None]
#: ``on_swapped()``: called after a new model was swapped in (start-up load or reload), e.g.
#: to republish the class metadata.
SwapCallback = Callable[[], None]


def class_metadata(label_set: Any, model_path: str, backend: str) -> dict:
    """Class names, RGB colours, ignore id, mask encoding and model facts of a serving model
    (what ``class_info`` and ``label_info`` publish)."""
    return {'label_set': label_set.name, 'num_classes': label_set.num_classes,
            'class_names': list(label_set.class_names),
            'colors': [list(map(int, c)) for c in label_set.colors],
            'ignore_index': int(label_set.ignore_index),
            'mask_encoding': 'mono8'
            if max(label_set.num_classes - 1, label_set.ignore_index) <= 255 else 'mono16',
            'model_path': model_path, 'backend': backend}


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


@dataclass
class ServingModel:
    """What serves frames: the Segmenter and the class groups (``class_groups``) made for its
    label set, loaded and swapped together."""

    segmenter: Any
    groups: Any = None  # bisenet_ros.class_groups.ClassGroups

    def close(self) -> None:
        self.segmenter.close()


def build_segmenter(p: NodeParams) -> Tuple[Optional[ServingModel], Optional[str]]:
    """A new, checked Segmenter for ``p`` with its class groups (or None), and the reason it
    could not be made: what :class:`ModelHolder` builds by default (the file check of
    :func:`precheck` included)."""
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
                              threads=p.threads or None, agreement_bound=p.auto_agreement,
                              streams=p.inference_streams or 'auto')
        check_candidate(segmenter)  # layout, classes vs label set, a test run
        groups = None
        if p.class_groups:
            from ..class_groups import load_class_groups
            groups = load_class_groups(p.class_groups, segmenter.label_set)
    except Exception as exc:  # any load or check failure must leave the node serving
        if segmenter is not None:
            segmenter.close()
        return None, (f"cannot load model '{p.model_path}' (backend {p.backend}, device "
                      f'{p.device}): {type(exc).__name__}: {exc}')
    return ServingModel(segmenter, groups), None


class SwapLock:
    """Any number of inference calls at once, or one model swap: a swap waits for the calls in
    progress and holds off new ones while it waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls = 0
        self._waiting = 0  # swaps waiting for the calls to end
        self._swapping = False

    def acquire_shared(self) -> None:
        with self._cond:
            while self._waiting or self._swapping:
                self._cond.wait()
            self._calls += 1

    def release_shared(self) -> None:
        with self._cond:
            self._calls -= 1
            if not self._calls:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._calls or self._swapping:
                self._cond.wait()
            self._waiting -= 1
            self._swapping = True
        try:
            yield
        finally:
            with self._cond:
                self._swapping = False
                self._cond.notify_all()


class ModelHolder:
    """Owns the Segmenter; loads candidates off the caller's thread and swaps them in."""

    def __init__(self, logger: Any, on_reloaded: Optional[ReloadCallback] = None,
                 on_swapped: Optional[SwapCallback] = None,
                 build: Optional[Callable[[NodeParams],
                                          Tuple[Optional[ServingModel], Optional[str]]]] = None
                 ) -> None:
        self._logger = logger
        self._build = build or build_segmenter
        self._on_reloaded = on_reloaded
        self._on_swapped = on_swapped
        self._infer_lock = SwapLock()
        self._serving: Optional[ServingModel] = None
        self._params: Optional[NodeParams] = None
        #: Why no model is serving (None while one is).
        self.error: Optional[str] = 'no model loaded yet'
        #: Why the last reload failed while the previous model kept serving.
        self.reload_error: Optional[str] = None
        # Loader thread state, guarded by _cond.
        self._generation = 0  # +1 at every close(): loads of an older generation are dropped
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
            generation = self._generation
        serving, error = self._build(p)
        with self._cond:
            stale = generation != self._generation or self._closed
        if stale:  # closed (cleanup, shutdown) while this loaded
            if serving is not None:
                serving.close()
            return error or 'closed while the model was loading'
        return self._finish(p, serving, error)

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
                generation = self._generation
            assert p is not None
            self._logger.info(f'reloading the model: {p.model_path} (backend {p.backend}, '
                              f'device {p.device}); the current model serves meanwhile')
            serving, error = self._build(p)
            with self._cond:
                superseded = (self._pending is not None or self._closed
                              or generation != self._generation)
            if superseded:  # a newer request, or a close (even one re-opened since)
                if serving is not None:
                    serving.close()
                self._logger.info(f'model {p.model_path} loaded but a newer reload was asked '
                                  'for; it is dropped' if error is None else
                                  f'model {p.model_path} not loaded ({error}); a newer reload '
                                  'was asked for')
                outcome = None
            else:
                outcome = self._finish(p, serving, error)
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

    def _finish(self, p: NodeParams, serving: Optional[ServingModel],
                error: Optional[str]) -> Optional[str]:
        """Swap ``serving`` in, or record ``error``; returns the error."""
        if error is not None:
            if self._serving is not None:
                error += f'; still serving {self._params.model_path}'  # type: ignore[union-attr]
                self.reload_error = error
            else:
                self.error = error
            self._logger.error(error)
            return error
        with self._infer_lock.exclusive():
            from ..inference.threads import set_torch_threads
            set_torch_threads(p.threads)  # the node owns its process: torch's pool is ours
            old, self._serving, self._params = self._serving, serving, p
            self.error = self.reload_error = None
            if old is not None:
                old.close()
        seg = serving.segmenter  # type: ignore[union-attr]
        ls = seg.label_set
        self._logger.info(f'model {p.model_path}: backend {seg.backend_name}, label set '
                          f'{ls.name} ({ls.num_classes} classes)'
                          + (f', class groups {p.class_groups}' if p.class_groups else '')
                          + f'; precision {p.precision} -> {seg.choice.summary()}; '
                          f'{seg.streams} inference stream(s)')
        if self._on_swapped is not None:
            try:
                self._on_swapped()
            except Exception as exc:  # publishers destroyed meanwhile (shutdown)
                self._logger.warning(f'after the model swap: {type(exc).__name__}: {exc}')
        return None

    # Serving ---------------------------------------------------------------------------------
    def acquire(self) -> Optional[ServingModel]:
        """The serving model (or None), locked against swaps until :meth:`release`; several
        threads may hold it at once (one per inference stream)."""
        self._infer_lock.acquire_shared()
        if self._serving is None:
            self._infer_lock.release_shared()
        return self._serving

    def release(self) -> None:
        self._infer_lock.release_shared()

    @property
    def serving(self) -> Optional[NodeParams]:
        """The parameters of the serving model, ``None`` without one."""
        return self._params if self._serving is not None else None

    @property
    def groups(self) -> Any:
        """The ``ClassGroups`` of the serving model, or None."""
        serving = self._serving
        return serving.groups if serving is not None else None

    def metadata(self) -> Optional[dict]:
        """:func:`class_metadata` of the serving model, or None without one."""
        serving, p = self._serving, self._params
        if serving is None or p is None:
            return None
        seg = serving.segmenter
        return class_metadata(seg.label_set, p.model_path, seg.backend_name)

    def report(self) -> Tuple[int, str, List[Tuple[str, str]]]:
        """``(level, message, key/values)`` for ``/diagnostics``.

        Keys ``reload`` (``idle``, ``in progress`` or ``failed``), ``reload_target`` and
        ``reload_seconds`` say what the loader thread does; ``error`` the last failure.
        """
        serving, p = self._serving, self._params
        seg = serving.segmenter if serving is not None else None
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
        if seg is None or p is None:
            message = (self.error or 'no model') + reloading
            return ERROR, message, [('error', self.error or '')] + reload_values
        ls = seg.label_set
        size = seg.input_size
        choice = seg.choice
        values = [('model_path', p.model_path), ('backend', seg.backend_name),
                  ('device', p.device), ('precision', choice.precision),
                  ('precision_requested', p.precision), ('precision_reason', choice.reason),
                  ('precision_agreement', '' if choice.agreement is None
                   else f'{100 * choice.agreement:.2f}%'),
                  ('precision_passed_over', '; '.join(f'{c}: {w}'
                                                      for c, w in choice.passed_over)),
                  ('label_set', ls.name), ('num_classes', str(ls.num_classes)),
                  ('input_size', 'native' if size is None else f'{size[0]}x{size[1]}'),
                  ('inference_streams', str(seg.streams))]
        values += reload_values
        if self.reload_error:
            return WARN, f'model reload failed: {self.reload_error}{reloading}', \
                values + [('error', self.reload_error)]
        return OK, f'{seg.backend_name} serving {Path(p.model_path).name}{reloading}', \
            values

    def close(self) -> None:
        """Stop the loader (a load in progress is dropped when it ends) and free the model."""
        with self._cond:
            self._closed = True
            self._generation += 1
            self._pending = None
            self._cond.notify_all()
        with self._infer_lock.exclusive():
            if self._serving is not None:
                self._serving.close()
                self._serving = None
