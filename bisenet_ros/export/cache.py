"""The per-user artifact cache: ONNX exports, int8 Q/DQ graphs, TensorRT engines, OpenVINO
compiled blobs and ``precision='auto'`` verdicts, kept across runs.

Where: ``$BISENET_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/bisenet_ros``, else
``~/.cache/bisenet_ros`` (:func:`cache_root`). One sub-folder per kind of artifact.

Keys: :func:`cache_key` hashes everything an artifact depends on (model content from
:func:`model_digest`, runtime name and version, precision, input size, and for engines the GPU
and TensorRT version), so a change of any of them is a different entry; stale entries are
simply never read again.

Nothing is deleted behind the user's back: ``bisenet cache`` lists the entries (size, last
use) and removes those unused for a number of days, or all (:func:`cache_entries`,
:func:`remove_entries`). A reused entry's access time is set to now, so it counts as used.

Writes are atomic: an artifact is built into a temporary file in its final folder and moved into
place with ``os.replace``, then a sidecar ``<entry>.json`` records its size and SHA-256. An entry
whose file or sidecar is missing, unreadable or does not match is *corrupt*: it is deleted and
rebuilt with a warning, never a crash. Builds that take long (export, calibration, engine build)
log their progress (:func:`progress`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..user_files import write_atomic

LOG = logging.getLogger(__name__)

#: Environment variable naming the cache folder (overrides XDG).
CACHE_ENV = 'BISENET_CACHE_DIR'
#: Seconds between "still building" log lines of :func:`progress`.
HEARTBEAT_S = 15.0
#: Bumped when the layout or the meaning of cached artifacts changes.
LAYOUT_VERSION = 1

_DIGESTS: Dict[Any, str] = {}


def cache_root() -> Path:
    """The cache folder (not created here): ``$BISENET_CACHE_DIR``,
    ``$XDG_CACHE_HOME/bisenet_ros`` or ``~/.cache/bisenet_ros``."""
    forced = os.environ.get(CACHE_ENV)
    if forced:
        return Path(forced)
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg) if xdg else Path.home() / '.cache'
    return base / 'bisenet_ros'


def cache_key(**parts: Any) -> str:
    """A short hex key of ``parts`` (JSON-serialisable values; order of names irrelevant)."""
    text = json.dumps({'layout': LAYOUT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def model_digest(model: Any) -> str:
    """SHA-256 identifying a model's content: a file's bytes, or a ``torch.nn.Module``'s
    parameters and buffers (names, dtypes, shapes, values) with its class count and size
    policy. A file's digest is remembered per (path, size, mtime) within the process."""
    if hasattr(model, 'kind') and hasattr(model, 'source'):  # an identified ModelFile
        model = model.path if model.path is not None else model.source
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).resolve()
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo not in _DIGESTS:
            _DIGESTS[memo] = file_digest(path)
        return _DIGESTS[memo]
    digest = hashlib.sha256()
    digest.update(repr((type(model).__name__, getattr(model, 'num_classes', None),
                        getattr(getattr(model, 'config', None), 'size_policy', None))).encode())
    for name, tensor in model.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f'{name}:{array.dtype}:{array.shape}'.encode())
        digest.update(array.tobytes())
    label_set = getattr(model, 'label_set', None)
    if label_set is not None and hasattr(label_set, 'to_dict'):
        digest.update(json.dumps(label_set.to_dict(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def progress(what: str, logger: Optional[logging.Logger] = None,
             every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Log ``what`` when it starts, every ``every_s`` seconds while it runs, and when it ends
    (with its duration), so that a long build is never silent."""
    log = logger or LOG
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            log.info('%s: still running (%.0f s)', what, time.monotonic() - start)

    log.info('%s: started', what)
    thread = threading.Thread(target=beat, name='bisenet-progress', daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    log.info('%s: done in %.1f s', what, time.monotonic() - start)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`~bisenet_ros.user_files.write_atomic`),
    making its folder first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


class ArtifactCache:
    """One kind of artifact (a sub-folder of :func:`cache_root`), each entry a file plus a
    checked sidecar.

    Args:
        kind: Sub-folder name (``'onnx'``, ``'auto'``, ``'tensorrt'``, ...).
        root: Cache folder (default :func:`cache_root`, read when the cache is made).
    """

    def __init__(self, kind: str, root: Optional[Path] = None) -> None:
        self.folder = Path(root if root is not None else cache_root()) / kind
        #: Entries built by this object (tests and logs: a warm start builds none).
        self.builds = 0

    def path(self, key: str, suffix: str) -> Path:
        """Where the entry ``key`` lives (``suffix`` such as ``'.onnx'``)."""
        return self.folder / f'{key}{suffix}'

    def valid(self, path: Path) -> bool:
        """Whether ``path`` and its sidecar exist and agree (size and SHA-256)."""
        side = _sidecar(path)
        try:
            record = json.loads(side.read_text())
            stat = path.stat()
            return (isinstance(record, dict) and record.get('size') == stat.st_size and
                    record.get('sha256') == file_digest(path))
        except (OSError, ValueError):
            return False

    def get_or_build(self, key: str, suffix: str, build: Callable[[Path], Any],
                     what: str, check: Optional[Callable[[Path], None]] = None) -> Path:
        """The entry ``key``: reused when valid, else built by ``build(tmp_path)`` (which writes
        the artifact to ``tmp_path``, in the cache folder) and moved into place atomically.

        ``check(path)`` may raise to reject a present entry that hashes right but cannot be
        used (it is then rebuilt once). ``what`` names the artifact in the progress log.
        """
        found = self.find(key, suffix, what, check)
        if found is not None:
            return found
        path = self.path(key, suffix)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.folder, prefix=f'.{key}', suffix=suffix)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with progress(f'building {what}', LOG):
                build(tmp)
            record = {'size': tmp.stat().st_size, 'sha256': file_digest(tmp), 'what': what,
                      'built': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        atomic_write_bytes(_sidecar(path), json.dumps(record, indent=1).encode())
        self.builds += 1
        LOG.info('artifact cache: wrote %s', path)
        return path

    def find(self, key: str, suffix: str, what: str,
             check: Optional[Callable[[Path], None]] = None) -> Optional[Path]:
        """The valid entry ``key``, or ``None`` (a corrupt one is deleted, with a warning)."""
        path = self.path(key, suffix)
        if not (path.exists() or _sidecar(path).exists()):
            return None
        problem = None if self.valid(path) else 'its checksum does not match'
        if problem is None and check is not None:
            try:
                check(path)
            except Exception as exc:  # any failure to use it means: rebuild
                problem = f'{type(exc).__name__}: {exc}'
        if problem is None:
            LOG.info('artifact cache: reusing %s (%s)', path, what)
            mark_used(path)
            return path
        LOG.warning('artifact cache: %s is corrupt (%s); rebuilding it', path, problem)
        self.discard(path)
        return None

    def discard(self, path: Path) -> None:
        """Delete an entry and its sidecar (missing files are fine)."""
        path.unlink(missing_ok=True)
        _sidecar(path).unlink(missing_ok=True)

    def read_record(self, key: str) -> Optional[Dict[str, Any]]:
        """A small JSON record (e.g. an agreement verdict), or ``None`` when absent or corrupt."""
        path = self.path(key, '.record.json')
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        mark_used(path)
        return data

    def write_record(self, key: str, data: Dict[str, Any]) -> None:
        """Store a small JSON record atomically (best effort: an unwritable cache is logged)."""
        try:
            atomic_write_bytes(self.path(key, '.record.json'),
                               json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as exc:
            LOG.warning('artifact cache: cannot write to %s (%s); not cached', self.folder, exc)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + '.json')


def mark_used(path: Path) -> None:
    """Set ``path``'s access time to now (its modification time stays the build's), the time
    :func:`cache_entries` reports as its last use (best effort: a read-only cache still
    serves)."""
    with contextlib.suppress(OSError):
        os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))


@dataclass(frozen=True)
class CacheEntry:
    """One artifact of the cache: its file and, when it has one, its checksum sidecar.

    Attributes:
        kind: Sub-folder (``onnx``, ``auto``, ``openvino``, ``tensorrt``, ...).
        files: The entry's files (the artifact first).
        size: Bytes of all its files.
        last_used: Newest access or modification time of its files, seconds since the epoch
            (this package sets the access time on every reuse; OpenVINO's compiled blobs have
            the times their file system keeps).
    """

    kind: str
    files: Tuple[Path, ...]
    size: int
    last_used: float


def cache_entries(root: Optional[Path] = None) -> List[CacheEntry]:
    """Every entry under ``root`` (default :func:`cache_root`), oldest use first: a file with
    its sidecar (``<name>.json`` or ``<stem>.json``); records, OpenVINO's compiled blobs and
    leftovers of interrupted builds are entries of their own."""
    root = Path(root) if root is not None else cache_root()
    entries: List[CacheEntry] = []
    if not root.is_dir():
        return entries
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {p.name: p for p in folder.iterdir() if p.is_file() and not p.is_symlink()}
        claimed = set()
        groups = []
        for name, path in sorted(files.items()):
            if name.endswith('.json'):
                continue
            # ArtifactCache's <name>.json, the TensorRT engines' <stem>.json
            sidecars = [s for s in (name + '.json', path.stem + '.json') if s in files]
            claimed.update(sidecars)
            groups.append((path,) + tuple(files[s] for s in dict.fromkeys(sidecars)))
        groups += [(path,) for name, path in sorted(files.items())
                   if name.endswith('.json') and name not in claimed]  # records
        for group in groups:
            stats = [f.stat() for f in group]
            entries.append(CacheEntry(folder.name, group, sum(s.st_size for s in stats),
                                      max(max(s.st_atime, s.st_mtime) for s in stats)))
    return sorted(entries, key=lambda e: e.last_used)


def remove_entries(entries: List[CacheEntry]) -> Tuple[int, int]:
    """Delete ``entries``' files; returns ``(entries removed, bytes freed)``. A file that is
    already gone counts as removed; one that cannot be deleted is logged and kept."""
    removed = freed = 0
    for entry in entries:
        try:
            for path in entry.files:
                path.unlink(missing_ok=True)
        except OSError as exc:
            LOG.warning('artifact cache: cannot delete %s (%s)', entry.files[0], exc)
            continue
        removed += 1
        freed += entry.size
    return removed, freed
