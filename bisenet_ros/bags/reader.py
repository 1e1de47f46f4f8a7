"""Read rosbag2 (sqlite3, mcap; metadata Humble..Kilted) and ROS 1 bags, without a ROS graph.

Two back ends behind one interface: ``rosbag2_py`` (the ROS 2 reference reader, when importable)
and the pure-Python ``rosbags`` library (``AnyReader``, which also reads ROS 1 ``.bag`` files).
Messages are decoded with the ``rosbags`` type store either way (CDR in, Python objects out).
Every failure raises :class:`BagError` naming the bag and listing the topics it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from ..user_files import load_yaml
from . import messages

LOG = logging.getLogger(__name__)

PathLike = Union[str, Path]
REPAIR_HINT = ('if the recording was interrupted the file may be truncated: repair it with '
               "'mcap recover' (mcap) or 'ros2 bag reindex' (missing metadata.yaml)")


class BagError(RuntimeError):
    """A bag cannot be read or lacks what was asked for; the message lists its topics."""


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: name, message type and message count (``None`` when unknown)."""

    name: str
    msgtype: str
    count: Optional[int] = None

    def describe(self) -> str:
        """``'/topic (type, n msgs)'`` for messages and errors."""
        count = '?' if self.count is None else str(self.count)
        return f'{self.name} ({self.msgtype}, {count} msgs)'


@dataclass
class BagMessage:
    """A message read from a bag; ``decode()`` returns the deserialised message object."""

    topic: str
    log_time_ns: int
    msgtype: str
    raw: bytes
    _decode: Callable[[bytes, str], Any]

    def decode(self) -> Any:
        """The message as a ``rosbags`` object (fields as in the .msg definition)."""
        return self._decode(self.raw, self.msgtype)


def metadata_topics(path: PathLike) -> List[TopicInfo]:
    """Topics declared in a rosbag2 ``metadata.yaml`` (empty if absent or unreadable).

    Used for error messages when the storage file itself cannot be opened.
    """
    meta = Path(path) / 'metadata.yaml' if Path(path).is_dir() else Path(path)
    try:
        info = load_yaml(meta, 'bag metadata')['rosbag2_bagfile_information']
        return [TopicInfo(t['topic_metadata']['name'], t['topic_metadata']['type'],
                          int(t.get('message_count', 0)))
                for t in info.get('topics_with_message_count') or []]
    except Exception:  # any malformed or missing metadata: nothing to list
        return []


def describe_topics(topics: Iterable[TopicInfo]) -> str:
    """``'/a (type, n msgs), /b (...)'`` or ``'none found'``."""
    text = ', '.join(t.describe() for t in sorted(topics, key=lambda t: t.name))
    return text or 'none found'


def _rosbag2_py_available() -> bool:
    try:
        import rosbag2_py  # noqa: F401
    except ImportError:
        return False
    return True


class BagReader:
    """Read messages of selected topics in log-time order.

    Args:
        path: rosbag2 directory (or its ``.mcap``/``.db3`` file) or a ROS 1 ``.bag`` file.
        backend: ``'auto'`` (rosbag2_py when importable, else rosbags), ``'rosbag2_py'`` or
            ``'rosbags'``.
        distro: type store used to decode messages whose definitions the bag does not carry.
    """

    def __init__(self, path: PathLike, backend: str = 'auto', distro: str = 'kilted') -> None:
        self.path = Path(path)
        self.distro = distro
        if not self.path.exists():
            raise BagError(f'bag {self.path} does not exist')
        is_ros1 = self.path.is_file() and self.path.suffix == '.bag'  # a rosbag2 folder may
        # also be called x.bag: only a file with that suffix is a ROS 1 bag
        if backend == 'auto':
            backend = 'rosbag2_py' if (_rosbag2_py_available() and not is_ros1) else 'rosbags'
        if backend not in ('rosbag2_py', 'rosbags'):
            raise ValueError(f"bag reader backend must be auto, rosbag2_py or rosbags, "
                             f"got '{backend}'")
        self.backend_name = backend
        self._impl: Any = None
        try:
            self._impl = (_Rosbag2PyImpl(self.path) if backend == 'rosbag2_py'
                          else _RosbagsImpl(self.path, distro))
        except BagError:
            raise
        except Exception as exc:
            raise self._error(f'cannot open: {exc}; {REPAIR_HINT}') from exc
        self.topics: Dict[str, TopicInfo] = {t.name: t for t in self._impl.topics()}
        LOG.debug('opened bag %s with %s: %s', self.path, backend, describe_topics(
            self.topics.values()))

    def _error(self, what: str) -> BagError:
        topics = (self.topics.values() if getattr(self, 'topics', None)
                  else metadata_topics(self.path))
        return BagError(f'bag {self.path}: {what}. Topics in the bag: {describe_topics(topics)}')

    def require_topic(self, topic: str, msgtypes: Optional[Sequence[str]] = None) -> TopicInfo:
        """The topic's info; raises :class:`BagError` if absent or of another type."""
        info = self.topics.get(topic)
        if info is None:
            raise self._error(f"no topic '{topic}'")
        if msgtypes and info.msgtype not in msgtypes:
            raise self._error(f"topic '{topic}' has type {info.msgtype}, expected "
                              + ' or '.join(msgtypes))
        return info

    def messages(self, topics: Sequence[str]) -> Iterator[BagMessage]:
        """Messages of ``topics`` (which must exist) in log-time order."""
        for topic in topics:
            self.require_topic(topic)
        count = 0
        try:
            for topic, log_time, raw, decode in self._impl.messages(topics):
                count += 1
                yield BagMessage(topic, int(log_time), self.topics[topic].msgtype, raw, decode)
        except BagError:
            raise
        except Exception as exc:
            raise self._error(f'read failed after {count} messages: {exc}; {REPAIR_HINT}') \
                from exc

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _RosbagsImpl:
    """The ``rosbags`` library: ``rosbag2.Reader`` for rosbag2 folders (whatever their name),
    ``AnyReader`` for ROS 1 ``.bag`` files and bare storage files."""

    def __init__(self, path: Path, distro: str) -> None:
        folder = path if path.is_dir() else path.parent
        if (folder / 'metadata.yaml').is_file():
            from rosbags.rosbag2 import Reader
            self._reader = Reader(folder)
            self._reader.open()
            self._decode = lambda raw, msgtype: messages.deserialize(raw, msgtype, distro)
        else:
            from rosbags.highlevel import AnyReader
            self._reader = AnyReader([path], default_typestore=messages.typestore(distro))
            self._reader.open()
            self._decode = self._reader.deserialize

    def topics(self) -> List[TopicInfo]:
        return [TopicInfo(name, info.msgtype or '?', int(info.msgcount))
                for name, info in self._reader.topics.items()]

    def messages(self, topics: Sequence[str]) -> Iterator[tuple]:
        conns = [c for c in self._reader.connections if c.topic in topics]
        for conn, log_time, raw in self._reader.messages(connections=conns):
            yield conn.topic, log_time, raw, self._decode

    def close(self) -> None:
        self._reader.close()


class _Rosbag2PyImpl:
    """``rosbag2_py.SequentialReader`` (ROS 2 installs); CDR decoded with the rosbags store."""

    def __init__(self, path: Path) -> None:
        import rosbag2_py
        self._rosbag2_py = rosbag2_py
        inside_bag = path.is_file() and (path.parent / 'metadata.yaml').is_file()
        self._uri = str(path.parent if inside_bag else path)  # a bare .mcap opens as a file
        self._storage_id = self._storage_identifier()
        self._reader = self._open()
        self._types = {t.name: t.type for t in self._reader.get_all_topics_and_types()}

    def _storage_identifier(self) -> str:
        try:
            meta = load_yaml(Path(self._uri) / 'metadata.yaml', 'bag metadata')
            return str(meta['rosbag2_bagfile_information'].get('storage_identifier', ''))
        except Exception:
            return ''

    def _open(self) -> Any:
        reader = self._rosbag2_py.SequentialReader()
        reader.open(self._rosbag2_py.StorageOptions(uri=self._uri, storage_id=self._storage_id),
                    self._rosbag2_py.ConverterOptions(input_serialization_format='cdr',
                                                      output_serialization_format='cdr'))
        return reader

    def topics(self) -> List[TopicInfo]:
        counts: Dict[str, int] = {}
        try:
            meta = self._rosbag2_py.Info().read_metadata(self._uri, self._storage_id)
            counts = {t.topic_metadata.name: int(t.message_count)
                      for t in meta.topics_with_message_count}
        except Exception:  # counts are informative only
            pass
        return [TopicInfo(name, msgtype, counts.get(name)) for name, msgtype in
                self._types.items()]

    def messages(self, topics: Sequence[str]) -> Iterator[tuple]:
        reader = self._open()  # a fresh reader per pass: filters and position are per reader
        reader.set_filter(self._rosbag2_py.StorageFilter(topics=list(topics)))

        def decode(raw: bytes, msgtype: str) -> Any:
            return messages.deserialize(raw, msgtype)

        while reader.has_next():
            topic, raw, log_time = reader.read_next()
            yield topic, log_time, bytes(raw), decode

    def close(self) -> None:
        self._reader = None
