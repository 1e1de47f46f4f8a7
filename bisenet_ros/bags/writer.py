"""Write rosbag2 bags (mcap or sqlite3) of CDR messages, with rosbag2_py or rosbags."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
import shutil
from typing import Any, Dict, Union

from . import messages

LOG = logging.getLogger(__name__)

STORAGES = ('mcap', 'sqlite3')
#: rosbag2 metadata version written per distribution (rosbags writes 8 or 9).
METADATA_VERSION = {'humble': 8, 'jazzy': 8, 'kilted': 9}


class BagExistsError(FileExistsError, ValueError):
    """The output path exists (and may not be replaced)."""


class BagWriter:
    """Create a new bag and write serialised (CDR) messages to it.

    Args:
        path: bag directory to create. An existing bag directory (or empty directory) is
            replaced only with ``overwrite=True``; any other existing path is an error.
        storage: ``'mcap'`` or ``'sqlite3'``.
        backend: ``'auto'`` (rosbag2_py when importable, else rosbags), ``'rosbag2_py'`` or
            ``'rosbags'``.
        distro: message definitions and metadata version (``humble``, ``jazzy``, ``kilted``).
    """

    def __init__(self, path: Union[str, Path], storage: str = 'mcap', backend: str = 'auto',
                 distro: str = 'kilted', overwrite: bool = False) -> None:
        if storage not in STORAGES:
            raise ValueError(f"bag storage must be one of {', '.join(STORAGES)}, got '{storage}'")
        if distro not in METADATA_VERSION:
            raise ValueError(f"distro must be one of {', '.join(METADATA_VERSION)}, "
                             f"got '{distro}'")
        self.path = Path(path)
        self.storage = storage
        self.distro = distro
        _prepare_target(self.path, overwrite)
        if backend == 'auto':
            backend = 'rosbag2_py' if importlib.util.find_spec('rosbag2_py') else 'rosbags'
        self.backend_name = backend
        self._topics: Dict[str, Any] = {}
        if backend == 'rosbags':
            from rosbags.rosbag2 import StoragePlugin, Writer
            plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
            self._writer = Writer(self.path, version=METADATA_VERSION[distro],
                                  storage_plugin=plugin)
            self._writer.open()
        elif backend == 'rosbag2_py':
            import rosbag2_py
            self._rosbag2_py = rosbag2_py
            self._writer = rosbag2_py.SequentialWriter()
            self._writer.open(rosbag2_py.StorageOptions(uri=str(self.path), storage_id=storage),
                              rosbag2_py.ConverterOptions(input_serialization_format='cdr',
                                                          output_serialization_format='cdr'))
        else:
            raise ValueError(f"bag writer backend must be auto, rosbag2_py or rosbags, "
                             f"got '{backend}'")

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic before its first message."""
        if topic in self._topics:
            return
        if self.backend_name == 'rosbags':
            self._topics[topic] = self._writer.add_connection(
                topic, msgtype, typestore=messages.typestore(self.distro))
            return
        fields = dict(name=topic, type=msgtype, serialization_format='cdr')
        try:  # Jazzy and later take a topic id first
            metadata = self._rosbag2_py.TopicMetadata(id=len(self._topics), **fields)
        except TypeError:  # Humble
            metadata = self._rosbag2_py.TopicMetadata(**fields)
        self._writer.create_topic(metadata)
        self._topics[topic] = topic

    def write(self, topic: str, log_time_ns: int, cdr: bytes) -> None:
        """Append one serialised message received at ``log_time_ns``."""
        if topic not in self._topics:
            raise ValueError(f"topic '{topic}' was not added to bag {self.path}")
        if self.backend_name == 'rosbags':
            self._writer.write(self._topics[topic], int(log_time_ns), cdr)
        else:
            self._writer.write(topic, cdr, int(log_time_ns))

    def close(self) -> None:
        """Finish the bag (writes the mcap footer / metadata.yaml)."""
        if self._writer is None:
            return
        close = getattr(self._writer, 'close', None)  # rosbag2_py before Jazzy: no close()
        if close is not None:
            close()
        self._writer = None  # rosbag2_py finalises the bag when the writer is destroyed

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _prepare_target(path: Path, overwrite: bool) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    is_bag = path.is_dir() and (path / 'metadata.yaml').is_file()
    is_empty = path.is_dir() and not any(path.iterdir())
    if not (is_bag or is_empty):
        raise BagExistsError(f'{path} exists and is not a bag directory; choose another output')
    if not overwrite:
        raise BagExistsError(f'bag {path} already exists; pass --force to replace it')
    LOG.info('replacing existing bag %s', path)
    shutil.rmtree(path)
