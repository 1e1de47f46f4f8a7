"""The one way to open a file whose path comes from a user, and the one way to write an artifact.

Reading (:func:`check_file`, :func:`read_bytes`, :func:`read_text`, :func:`load_yaml`):

* the name is checked first: empty, a NUL byte (which the OS would silently cut the name at)
  and a name over the file system's limits are refused with the reason;
* the path is stat'ed and must be a regular file (symbolic links are followed; a dangling link
  is named as such); a folder, FIFO, device or socket is refused naming what it is, never as
  "not found";
* the file is opened non-blocking (a FIFO swapped in after the stat cannot hang the open), the
  open file is checked again, and at most ``max_bytes + 1`` bytes are read;
* all of it runs on a daemon thread joined for at most ``timeout_s``: a read that never returns
  (a ``/proc`` file, a hung network mount) is a refusal after the time bound, the caller is
  never blocked past it (the thread is left to the OS);
* every ``OSError`` becomes a :class:`UserFileError` (a :class:`~bisenet_ros.limits.LimitError`,
  so a ``ValueError``) naming what the file is for, the path and the reason; a missing file is
  a :class:`MissingFileError`, also a ``FileNotFoundError``.

Writing (:func:`atomic_path`, :func:`write_atomic`): into a temp file in the destination's
folder, then ``os.replace``; a write that fails (disk full, file-size limit, a signal) leaves
the previous file as it was and no temp file behind.
"""

from __future__ import annotations

from contextlib import contextmanager
import os
from pathlib import Path
import stat
import tempfile
import threading
from typing import Any, Callable, Iterator, Optional, TypeVar, Union

from .limits import LimitError, MAX_TEXT_BYTES, parse_yaml, shorten

PathLike = Union[str, 'os.PathLike[str]']
T = TypeVar('T')

#: Seconds a user's file may take to stat and read before it is refused (a local file of the
#: sizes allowed takes milliseconds; a network mount that does not answer takes forever).
DEFAULT_TIMEOUT_S = 10.0
#: Largest model file read (checkpoint, ONNX, engine, IR): 4 GiB.
MAX_MODEL_BYTES = 4 << 30
#: Fallbacks when the file system does not say (``os.pathconf``): Linux's NAME_MAX/PATH_MAX.
NAME_MAX = 255
PATH_MAX = 4096


class UserFileError(LimitError):
    """A user's file cannot be used; the message names its purpose, the path and the reason."""


class MissingFileError(UserFileError, FileNotFoundError):
    """The path names nothing (also a ``FileNotFoundError`` for callers that catch that)."""


def describe_mode(mode: int) -> str:
    """What an ``st_mode`` is, in words: ``'regular file'``, ``'folder'``, ``'FIFO'``, ..."""
    for test, name in ((stat.S_ISREG, 'regular file'), (stat.S_ISDIR, 'folder'),
                       (stat.S_ISFIFO, 'FIFO (named pipe)'), (stat.S_ISCHR, 'character device'),
                       (stat.S_ISBLK, 'block device'), (stat.S_ISSOCK, 'socket'),
                       (stat.S_ISLNK, 'symbolic link')):
        if test(mode):
            return name
    return f'special file (mode {oct(stat.S_IFMT(mode))})'


def name_problem(path: Any) -> Optional[str]:
    """Why ``path`` cannot name a file (not a path, empty, a NUL byte, a part over NAME_MAX
    bytes or the whole over PATH_MAX), or ``None``. Reads nothing."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return f'expected a file path, got {type(path).__name__}'
    text = os.fsdecode(os.fspath(path))
    if not text:
        return 'empty path'
    if '\x00' in text:
        return 'the path contains a NUL byte'
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        return 'the path cannot be encoded for this file system'
    longest = max(len(part) for part in raw.split(b'/'))
    if longest > NAME_MAX:
        return f'a part of the path is {longest} bytes long, over the limit of {NAME_MAX}'
    if len(raw) >= PATH_MAX:
        return f'the path is {len(raw)} bytes long, over the limit of {PATH_MAX - 1}'
    return None


def _where(what: str, path: Any) -> str:
    shown = os.fsdecode(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) \
        else repr(path)
    return f'{what} {shorten(shown.replace(chr(0), "<NUL>"), 160)}'


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _refuse(what: str, path: Any, exc: OSError) -> UserFileError:
    kind = MissingFileError if isinstance(exc, FileNotFoundError) else UserFileError
    return kind(f'{_where(what, path)}: cannot read ({_reason(exc)})')


def _stat_regular(path: PathLike, what: str, allow_pipe: bool = False) -> os.stat_result:
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        try:
            dangling = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            dangling = False
        if dangling:
            raise UserFileError(f'{_where(what, path)}: a symbolic link to nothing '
                                '(its target does not exist)') from None
        raise _refuse(what, path, exc) from None
    except OSError as exc:
        raise _refuse(what, path, exc) from None
    if not (stat.S_ISREG(info.st_mode) or allow_pipe and stat.S_ISFIFO(info.st_mode)):
        raise UserFileError(f'{_where(what, path)}: is a {describe_mode(info.st_mode)}, '
                            'expected a regular file')
    return info


def bounded(work: Callable[[], T], timeout_s: float, where: str) -> T:
    """``work()`` on a daemon thread, waited for at most ``timeout_s`` seconds; its result, or
    its exception re-raised here. Past the bound a :class:`UserFileError` naming ``where``
    (the thread is abandoned: a blocked ``read`` cannot be interrupted from Python)."""
    box: dict = {}

    def run() -> None:
        try:
            box['value'] = work()
        except BaseException as exc:  # handed to the caller
            box['error'] = exc
    thread = threading.Thread(target=run, name='user_file', daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise UserFileError(f'{where}: no answer within {timeout_s:g} s (a file whose read '
                            'blocks, such as a FIFO, a /proc file or a hung network mount?)')
    if 'error' in box:
        raise box['error']
    return box['value']


def check_file(path: PathLike, what: str, timeout_s: float = DEFAULT_TIMEOUT_S
               ) -> os.stat_result:
    """The ``os.stat`` of ``path`` if it names a regular file (symbolic links followed), else a
    :class:`UserFileError` saying why (name, missing, folder, FIFO, device, permission, ...).
    The stat runs under the time bound of :func:`bounded`."""
    problem = name_problem(path)
    if problem:
        raise UserFileError(f'{_where(what, path)}: {problem}')
    return bounded(lambda: _stat_regular(path, what), timeout_s, _where(what, path))


def _read(path: PathLike, what: str, max_bytes: int, allow_pipe: bool = False,
          head: bool = False) -> bytes:
    where = _where(what, path)
    info = _stat_regular(path, what, allow_pipe)
    if info.st_size > max_bytes and not head:
        raise UserFileError(f'{where}: {info.st_size} bytes, more than the {max_bytes} allowed')
    # A pipe is opened blocking (its writer may come later: the time bound covers it); a
    # regular file non-blocking, so that a FIFO swapped in after the stat cannot hang here.
    pipe = stat.S_ISFIFO(info.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | (0 if pipe else os.O_NONBLOCK)
                     | getattr(os, 'O_CLOEXEC', 0) | getattr(os, 'O_NOCTTY', 0))
    except OSError as exc:
        raise _refuse(what, path, exc) from None
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or pipe and stat.S_ISFIFO(mode)):  # swapped after the stat
            raise UserFileError(f'{where}: is a {describe_mode(mode)}, expected a regular file')
        os.set_blocking(fd, True)
        chunks = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _refuse(what, path, exc) from None
    finally:
        os.close(fd)
    data = b''.join(chunks)
    if head:
        return data[:max_bytes]
    if len(data) > max_bytes:  # grew, or a file reporting size 0 (/proc, /sys)
        raise UserFileError(f'{where}: more than the {max_bytes} bytes allowed')
    return data


def read_bytes(path: PathLike, what: str, max_bytes: int,
               timeout_s: float = DEFAULT_TIMEOUT_S, allow_pipe: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``), read within
    ``timeout_s`` seconds; every problem is a :class:`UserFileError` naming ``what`` and the
    path. ``allow_pipe``: a pipe or FIFO is read too (``--params-file <(...)``), to its end,
    within the same bounds (a FIFO nobody writes to is refused after ``timeout_s``)."""
    problem = name_problem(path)
    if problem:
        raise UserFileError(f'{_where(what, path)}: {problem}')
    return bounded(lambda: _read(path, what, max_bytes, allow_pipe), timeout_s,
                   _where(what, path))


def read_head(path: PathLike, what: str, count: int,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """The first ``count`` bytes of the regular file ``path`` (fewer for a shorter file), read
    within ``timeout_s``: proof that a file (a model, before a parser reads it whole) answers.
    Problems are :class:`UserFileError`, as for :func:`read_bytes`."""
    problem = name_problem(path)
    if problem:
        raise UserFileError(f'{_where(what, path)}: {problem}')
    return bounded(lambda: _read(path, what, count, head=True), timeout_s, _where(what, path))


def read_text(path: PathLike, what: str, max_bytes: int = MAX_TEXT_BYTES,
              timeout_s: float = DEFAULT_TIMEOUT_S, allow_pipe: bool = False) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a refusal names the first bad byte)."""
    raw = read_bytes(path, what, max_bytes, timeout_s, allow_pipe)
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise UserFileError(f'{_where(what, path)}: not UTF-8 text ({exc.reason} at byte '
                            f'{exc.start})') from None


def load_yaml(path: PathLike, what: str, max_bytes: int = MAX_TEXT_BYTES,
              any_tags: bool = False, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """:func:`read_text` then :func:`bisenet_ros.limits.parse_yaml` (its bounds on nodes and
    depth); problems are :class:`~bisenet_ros.limits.LimitError` naming ``what`` and the path."""
    return parse_yaml(read_text(path, what, max_bytes, timeout_s), _where(what, path),
                      any_tags=any_tags)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temp path in ``path``'s folder to write to; when the block ends without an exception
    it replaces ``path`` (``os.replace``, atomic on one file system), else it is removed and
    ``path`` stays as it was. The folder must exist.

    Example: ``with atomic_path(out) as tmp: torch.save(obj, tmp)``.
    """
    target = Path(path)
    fd, name = tempfile.mkstemp(prefix=f'.{target.name[:64]}.', suffix='.tmp',
                                dir=str(target.parent) or '.')
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        try:
            os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; a plain write would not
        except OSError:
            pass
        os.replace(temp, target)
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise


def write_atomic(path: PathLike, data: Union[bytes, str]) -> Path:
    """Write ``data`` (``str``: UTF-8) to ``path`` through :func:`atomic_path`; returns it."""
    raw = data.encode('utf-8') if isinstance(data, str) else bytes(data)
    with atomic_path(path) as temp:
        with open(temp, 'wb') as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` would, for every thread);
    0o022 where ``/proc`` does not say."""
    try:
        with open('/proc/self/status') as handle:
            for line in handle:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
