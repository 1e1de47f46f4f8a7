"""Bounds on untrusted input, checked before the expensive step (pure Python, no ROS).

* pixels of an input image: :data:`DEFAULT_MAX_INPUT_PIXELS`, read from the encoded header
  (:mod:`.image_header`) or the Image message's width and height before anything is decoded;
* network work (input size x batch) against the memory available, :data:`BYTES_PER_PIXEL`;
* thread counts against the CPUs this process may run on;
* files parsed as text or YAML (label sets, params files, bag metadata, configs): size, nodes
  (alias expansions included: no "billion laughs") and nesting depth (files themselves are
  read by :mod:`bisenet_ros.user_files`);
* text echoed into logs and ``/diagnostics``: :func:`shorten`.

Every refusal is a :class:`LimitError` (a ``ValueError``) naming what was expected and what
arrived.
"""

from __future__ import annotations

import operator
import os
from typing import Any, Optional

#: Largest decoded input image, in pixels (width x height): 4096 x 4096 = 16.8 MP, which takes
#: 4K UHD (8.3 MP) and 12 MP cameras. Decoded as BGR it is 50 MB; segmented at native size it
#: needs about 6.5 GB with the packaged model (:data:`BYTES_PER_PIXEL`).
DEFAULT_MAX_INPUT_PIXELS = 4096 * 4096
#: Peak memory of one inference per network input pixel: :data:`FIXED_BYTES_PER_PIXEL` plus,
#: per class, :data:`CLASS_BYTES_PER_PIXEL` (the logits and their resize; twice that with the
#: confidence output, which adds a softmax). The worst backend measured here, rounded up
#: (``benchmarks/bench_memory_per_pixel.py``, 768x768, docs/reliability.md): 11 classes
#: 258..381 B, 150 classes torch 797 B (1235 B with confidence), ONNX Runtime 1561 B (2826 B).
FIXED_BYTES_PER_PIXEL = 280
CLASS_BYTES_PER_PIXEL = 10
#: Class count assumed where the model is not known yet (the packaged CamVid model).
DEFAULT_NUM_CLASSES = 11
#: Bytes per pixel of the packaged model without confidence (what a parameter check assumes).
BYTES_PER_PIXEL = FIXED_BYTES_PER_PIXEL + CLASS_BYTES_PER_PIXEL * DEFAULT_NUM_CLASSES
#: Ceiling of every decode (pixels): OpenCV's own decoder limit (``OPENCV_IO_MAX_IMAGE_PIXELS``,
#: set by the package before OpenCV loads, see :mod:`bisenet_ros.image_decode`) and the largest
#: ``max_input_pixels`` accepted: 8192 x 8192 = 67 MP, the largest ``input_size`` too.
DECODER_MAX_PIXELS = 8192 * 8192
#: Largest text or YAML file parsed (label set, params file, bag metadata, training config).
MAX_TEXT_BYTES = 1 << 20
#: Most YAML nodes (aliases counted each time they are used) and deepest nesting accepted.
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64

#: Most characters of a reason (a reject, an error) echoed into a log line or ``/diagnostics``:
#: a 1 MB encoding string must not become a 1 MB log line.
MAX_REASON_CHARS = 200
#: Most characters of one ``/diagnostics`` message or value: the last guard against
#: amplification, loose enough for a reason that names two model paths.
MAX_DIAGNOSTIC_CHARS = 1000


class LimitError(ValueError):
    """An input exceeds a bound; the message names the bound and what arrived."""


def check_pixels(width: int, height: int, max_pixels: int, what: str) -> None:
    """:class:`LimitError` unless ``width x height`` is positive and at most ``max_pixels``
    (0: the decoder's ceiling :data:`DECODER_MAX_PIXELS`; a negative bound is refused, it
    never turns the bound off)."""
    bound = pixel_bound(max_pixels)
    if width <= 0 or height <= 0:
        raise LimitError(f'{what}: size {width}x{height} is empty')
    if width * height > bound:
        raise LimitError(f'{what}: {width}x{height} = {width * height} pixels exceeds '
                         f'max_input_pixels {bound}')


def pixel_bound(max_pixels: int) -> int:
    """The pixel bound that ``max_pixels`` means: itself when in 1..:data:`DECODER_MAX_PIXELS`,
    the ceiling for 0; :class:`LimitError` for anything else (``-1`` included)."""
    try:
        max_pixels = operator.index(max_pixels)
    except TypeError:
        raise LimitError(f'max_input_pixels must be an integer, got {max_pixels!r}') from None
    if max_pixels == 0:
        return DECODER_MAX_PIXELS
    if not 0 < max_pixels <= DECODER_MAX_PIXELS:
        raise LimitError(f'max_input_pixels must be in 1..{DECODER_MAX_PIXELS} (0: that '
                         f'ceiling), got {max_pixels}')
    return max_pixels


def shorten(text: Any, limit: int = MAX_REASON_CHARS) -> str:
    """``str(text)`` cut to at most ``limit`` characters (``'...'`` and the count cut said at
    the end), for anything that echoes untrusted text into a log or ``/diagnostics``."""
    text = str(text)
    if len(text) <= limit:
        return text
    kept = limit
    for _ in range(2):  # the count's own digits shorten what is kept
        tail = f'... ({len(text) - kept} more characters)'
        kept = max(0, limit - len(tail))
    return text[:kept] + f'... ({len(text) - kept} more characters)'


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


def bytes_per_pixel(num_classes: Optional[int] = None, confidence: bool = False) -> int:
    """Peak bytes of one inference per network input pixel for a model of ``num_classes``
    classes (``None``: :data:`DEFAULT_NUM_CLASSES`), with or without the confidence output."""
    classes = DEFAULT_NUM_CLASSES if num_classes is None else max(1, int(num_classes))
    return FIXED_BYTES_PER_PIXEL + CLASS_BYTES_PER_PIXEL * classes * (2 if confidence else 1)


def work_problem(height: int, width: int, batch: int = 1, num_classes: Optional[int] = None,
                 confidence: bool = False) -> Optional[str]:
    """Why a ``batch`` x ``height`` x ``width`` inference of a ``num_classes`` model (with the
    confidence output or not) cannot fit in the memory available now (estimated at
    :func:`bytes_per_pixel`), or ``None``."""
    memory = machine_memory()
    per_pixel = bytes_per_pixel(num_classes, confidence)
    need = int(height) * int(width) * max(1, int(batch)) * per_pixel
    if memory and need > memory:
        return (f'{batch} x {height}x{width} needs about {need / 2**30:.1f} GiB to segment '
                f'({per_pixel} B per pixel'
                + (f' for {num_classes} classes' if num_classes is not None else '')
                + (' with confidence' if confidence else '')
                + f'), more than the {memory / 2**30:.1f} GiB available; use a smaller '
                'input_size or batch')
    return None


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
