"""Bounds on untrusted input, checked before the expensive step (pure Python, no ROS).

* pixels of an input image: :data:`DEFAULT_MAX_INPUT_PIXELS`, read from the encoded header
  (:mod:`.image_header`) or the Image message's width and height before anything is decoded;
* network work (input size x batch) against the memory available, :data:`BYTES_PER_PIXEL`;
* thread counts against the CPUs this process may run on;
* files parsed as text or YAML (label sets, params files, bag metadata, configs): size, nodes
  (alias expansions included: no "billion laughs") and nesting depth.

Every refusal is a :class:`LimitError` (a ``ValueError``) naming what was expected and what
arrived.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

#: Largest decoded input image, in pixels (width x height): 4096 x 4096 = 16.8 MP, which takes
#: 4K UHD (8.3 MP) and 12 MP cameras. Decoded as BGR it is 50 MB; segmented at native size it
#: needs about 4.7 GB (:data:`BYTES_PER_PIXEL`).
DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
#: Peak memory of one inference per network input pixel, measured here with the default model
#: at 1024x1024 and 2048x2048 (ONNX Runtime 279/249 B, torch 253/221 B), rounded up.
BYTES_PER_PIXEL = 300
#: Largest text or YAML file parsed (label set, params file, bag metadata, training config).
MAX_TEXT_BYTES = 1 << 20
#: Most YAML nodes (aliases counted each time they are used) and deepest nesting accepted.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64

PathLike = Union[str, 'os.PathLike[str]']


class LimitError(ValueError):
    """An input exceeds a bound; the message names the bound and what arrived."""


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """:class:`LimitError` unless ``width x height`` is positive and at most ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise LimitError(f'{what}: size {width}x{height} is empty')
    if max_pixels > 0 and width * height > max_pixels:
        raise LimitError(f'{what}: {width}x{height} = {width * height} pixels exceeds '
                         f'max_input_pixels {max_pixels}')


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_problem(threads: Optional[int]) -> Optional[str]:
    """Why ``threads`` is unfit here (``None``/0: the runtime default, fine), or ``None``."""
    if not threads:
        return None
    cpus = available_cpus()
    if threads < 0 or threads > cpus:
        return f'threads must be in 0..{cpus} (the CPUs this process may use), got {threads}'
    return None


def machine_memory() -> int:
    """Memory this process could take now, in bytes: ``MemAvailable`` of ``/proc/meminfo``,
    else the physical memory (0 when unknown)."""
    try:
        with open('/proc/meminfo') as handle:
            for line in handle:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (AttributeError, ValueError, OSError):
        return 0


def work_problem(height: int, width: int, batch: int = 1) -> Optional[str]:
    """Why a ``batch`` x ``height`` x ``width`` inference cannot fit in the memory available
    now (estimated at :data:`BYTES_PER_PIXEL`), or ``None``."""
    memory = machine_memory()
    need = int(height) * int(width) * max(1, int(batch)) * BYTES_PER_PIXEL
    if memory and need > memory:
        return (f'{batch} x {height}x{width} needs about {need / 2**30:.1f} GiB to segment '
                f'({BYTES_PER_PIXEL} B per pixel), more than the {memory / 2**30:.1f} GiB '
                'available; use a smaller input_size or batch')
    return None


def read_text(path: PathLike, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path``, refused above ``max_bytes``; every OS error is a
    :class:`LimitError` naming ``what`` and the path (missing, a folder, unreadable, ...)."""
    where = f'{what} {path}'
    try:
        size = os.stat(path).st_size
        if Path(path).is_dir():
            raise LimitError(f'{where}: is a folder, expected a file')
        if size > max_bytes:
            raise LimitError(f'{where}: {size} bytes, more than the {max_bytes} allowed')
        with open(path, 'rb') as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise LimitError(f'{where}: cannot read ({exc.strerror or exc})') from None
    if len(raw) > max_bytes:  # grew, or a device file reporting size 0
        raise LimitError(f'{where}: more than the {max_bytes} bytes allowed')
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise LimitError(f'{where}: not UTF-8 text ({exc.reason} at byte {exc.start})') \
            from None


def parse_yaml(text: str, what: str, max_nodes: int = MAX_YAML_NODES,
               max_depth: int = MAX_YAML_DEPTH, any_tags: bool = False) -> Any:
    """``yaml.safe_load`` of ``text`` after checking its node count and depth; every problem
    (syntax included) is a :class:`LimitError` starting with ``what``. ``any_tags``: read
    tagged nodes as plain lists, dicts and strings, as rcl does (``launch_ros`` writes
    ``!!python/tuple`` into the params files it makes); nothing is ever instantiated."""
    import yaml
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise LimitError(f'{what}: not valid YAML ({" ".join(str(exc).split())})') from None
    if root is not None:
        _count_nodes(root, what, max_nodes, max_depth)
    try:
        return yaml.load(text, Loader=_tag_blind_loader() if any_tags else yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise LimitError(f'{what}: not valid YAML ({" ".join(str(exc).split())})') from None


def _tag_blind_loader() -> Any:
    """A ``SafeLoader`` that reads a node with an unknown tag as its plain kind."""
    import yaml

    class TagBlindLoader(yaml.SafeLoader):
        pass

    def plain(loader: Any, _suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        return loader.construct_scalar(node)
    TagBlindLoader.add_multi_constructor('', plain)
    return TagBlindLoader


def _count_nodes(root: Any, what: str, max_nodes: int, max_depth: int) -> None:
    import yaml
    count = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            raise LimitError(f'{what}: more than {max_nodes} YAML nodes (aliases counted '
                             'where used)')
        if depth > max_depth:
            raise LimitError(f'{what}: YAML nested deeper than {max_depth} levels')
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))


def load_yaml(path: PathLike, what: str, max_bytes: int = MAX_TEXT_BYTES,
              any_tags: bool = False) -> Any:
    """:func:`read_text` then :func:`parse_yaml`."""
    return parse_yaml(read_text(path, what, max_bytes), f'{what} {path}', any_tags=any_tags)
