"""Parameters of the segmentation node: one table of specs, validation with reasons, and the
frozen :class:`NodeParams` the node works from, derived from the table.

The table is plain Python (testable without ROS); :func:`descriptor` turns a spec into an
``rcl_interfaces/ParameterDescriptor`` with its range, so ``ros2 param describe`` shows it and
rclpy itself rejects out-of-range values. Each spec says when a change takes effect:

* ``runtime``: applied to the next frame (rates, switches, alpha, threshold);
* ``reload``: the model is reloaded on a loader thread (see
  :mod:`~bisenet_ros.ros.model_holder`); a value failing the quick check (file, kind, label set)
  is rejected, a model that fails to load later leaves the old one serving and the parameters
  are set back to it;
* ``startup``: read-only after start (topics, QoS).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import re
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from ..inference.backends import BACKENDS, MAX_STREAMS, PRECISION_CHOICES, PRECISIONS
from ..limits import (DECODER_MAX_PIXELS, DEFAULT_MAX_INPUT_PIXELS, LimitError, parse_yaml,
                      shorten, threads_problem, work_problem)
from ..resources import default_model_path

_DEVICE = re.compile(r'^(auto|cpu|cuda(:\d+)?|gpu(:\d+)?)$')
_TOPIC = re.compile(r'^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$')


class ParamError(ValueError):
    """One or more parameter values are invalid; the message lists each with its reason."""


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: default, meaning, when a change applies and what values are valid."""

    name: str
    default: Any
    description: str
    applies: str = 'runtime'  # 'runtime' | 'reload' | 'startup'
    range: Optional[Tuple[float, float]] = None
    choices: Optional[Tuple[str, ...]] = None
    check: Optional[Callable[[Any], Optional[str]]] = None


def _check_device(value: str) -> Optional[str]:
    return None if _DEVICE.match(value) else \
        "expected 'cpu', 'cuda', 'cuda:<index>', 'gpu[:<index>]' (OpenVINO) or 'auto'"


def _check_input_size(value: Sequence[int]) -> Optional[str]:
    if len(value) != 2:
        return f'expected [height, width], got {len(value)} values'
    if tuple(value) == (0, 0):
        return None
    if not all(32 <= int(v) <= 8192 for v in value):
        return 'each of height, width must be in 32..8192 ([0, 0] = the model\'s own size)'
    return work_problem(int(value[0]), int(value[1]))


def _check_threads(value: int) -> Optional[str]:
    return threads_problem(value)


#: Longest fully resolved topic name: rmw's ``RMW_TOPIC_MAX_NAME_LENGTH`` (255 characters of a
#: DDS topic name, less the ``rq/`` prefix and ``Request``/``Reply`` suffix rmw adds).
MAX_TOPIC_CHARS = 247
#: Name of the node (``~`` in a topic name means ``<namespace>/<NODE_NAME>``).
NODE_NAME = 'segmentation_node'
#: Topic names the node publishes under ``<output_prefix>`` (or ``<output_prefix>/<camera>``):
#: ``camera_io.OUTPUTS`` and the latched metadata (a test checks that none is missing).
OUTPUT_NAMES = ('mask', 'color_mask', 'overlay', 'confidence', 'confidence_mono8', 'points',
                'camera_info', 'groups', 'class_info', 'label_info', 'groups_info',
                'groups_label_info')


def resolve_topic(name: str, namespace: str = '/', node: str = NODE_NAME) -> str:
    """The fully qualified form of a valid topic ``name`` as rcl resolves it: absolute names
    stay, relative names go under ``namespace``, ``~`` is ``<namespace>/<node>``."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('~'):
        rest = name[1:].lstrip('/')
        return f'{ns}/{node}' + (f'/{rest}' if rest else '')
    if name.startswith('/'):
        return name
    return f'{ns}/{name}'


def _check_topics(value: Sequence[str]) -> Optional[str]:
    if not value:
        return 'at least one image topic is needed'
    bad = [t for t in value if not _TOPIC.match(t)]
    if bad:
        return f'not valid ROS topic names: {shorten(bad)}'
    if len(set(value)) != len(value):
        return f'topics repeat: {shorten(list(value))}'
    return _length_problem(value)


def _length_problem(names: Sequence[str]) -> Optional[str]:
    long = [n for n in names if len(n) > MAX_TOPIC_CHARS]
    if long:
        return (f'{len(long[0])} characters in {shorten(long[0], 60)}: over the '
                f'{MAX_TOPIC_CHARS} a DDS topic name may have once resolved')
    return None


def _check_prefix(value: str) -> Optional[str]:
    return (None if _TOPIC.match(value) else 'not a valid ROS namespace') \
        or _length_problem([value])


def _check_optional_topic(value: str) -> Optional[str]:
    return (None if value == '' or _TOPIC.match(value)
            else 'not a valid ROS topic name (or empty)') or _length_problem([value])


def topics_problem(values: Mapping[str, Any], namespace: str = '/') -> Optional[str]:
    """Why the topic parameters in ``values`` (each valid on its own) cannot work together in a
    node in ``namespace``, or ``None``. Names are resolved first (:func:`resolve_topic`), so
    ``camera/image_raw`` and ``/camera/image_raw`` are the same topic in the root namespace
    (and not in ``/robot``); then an input that is one of the node's own outputs (a loop),
    inputs that repeat, and any resolved name over :data:`MAX_TOPIC_CHARS` are refused."""
    from .topics import camera_info_topic, camera_names
    topics = [str(t) for t in values['image_topics']]
    compressed = bool(values.get('compressed', False))
    prefix = resolve_topic(str(values['output_prefix']), namespace)
    inputs: Dict[str, str] = {}  # resolved name -> the parameter value it came from
    for topic in topics:
        resolved = resolve_topic(topic, namespace)
        if resolved in inputs:
            return (f'image_topics: {shorten(inputs[resolved], 80)} and {shorten(topic, 80)} '
                    f'are the same topic ({shorten(resolved, 80)}) in namespace {namespace}')
        inputs[resolved] = topic
    subscribed = [f'{t}/compressed' if compressed else t for t in inputs]
    if values.get('use_camera_info'):
        subscribed += [camera_info_topic(t) for t in inputs]
    depth = str(values.get('depth_topic') or '')
    if depth:
        subscribed += [resolve_topic(depth, namespace),
                       camera_info_topic(resolve_topic(depth, namespace))]
    spaces = [prefix] if len(topics) == 1 else \
        [f'{prefix}/{name}' for name in camera_names(topics)] + [prefix]
    outputs = {f'{space}/{name}' for space in spaces for name in OUTPUT_NAMES}
    looped = [t for t in subscribed if t in outputs]
    if looped:
        return (f'{shorten(looped[0], 80)} is an output of this node (output_prefix '
                f'{shorten(prefix, 80)}): subscribing to it would feed the node its own '
                'output')
    return _length_problem(subscribed + sorted(outputs))


SPECS: Tuple[ParamSpec, ...] = (
    ParamSpec('model_path', '',
              'Model file: project checkpoint (.pt/.pth), reference state_dict, .onnx or '
              "TensorRT .engine/.plan; '' = the packaged CamVid model.", 'reload'),
    ParamSpec('label_set', '', "Label set name ('camvid', 'cityscapes') or YAML path; empty: "
              'the one stored in the checkpoint.', 'reload'),
    ParamSpec('class_groups', '', "Class groups YAML ('camvid_nav2' or a path): model classes "
              'merged into navigation groups with per-class confidence thresholds, published '
              "on <output_prefix>/groups (mono8, 255 = unknown); '' = off.", 'reload'),
    ParamSpec('backend', 'auto', 'Inference runtime.', 'reload', choices=BACKENDS),
    ParamSpec('device', 'cpu', "Device: 'cpu', 'cuda[:<index>]', 'gpu[:<index>]' (OpenVINO) or "
              "'auto'.", 'reload', check=_check_device),
    ParamSpec('precision', 'auto', "Numeric precision of inference; 'auto': the fastest this "
              'hardware runs natively whose labels agree with fp32 on the packaged frames '
              '(>= 99%), else fp32; others as given (backend permitting).', 'reload',
              choices=PRECISION_CHOICES),
    ParamSpec('auto_agreement', 0.99, "precision auto: the least share of labels a faster "
              'configuration (bf16, int8, fp16) must share with fp32 on the packaged frames to '
              'be chosen; below it, the next one is tried.', 'reload', range=(0.0, 1.0)),
    ParamSpec('input_size', [0, 0], 'Network input [height, width] in pixels; [0, 0]: the '
              "model's own size. Outputs always have the input image's resolution.", 'reload',
              check=_check_input_size),
    ParamSpec('threads', 0, 'CPU threads for inference, at most the CPUs the process may use; '
              '0: the runtime default.', 'reload', range=(0, 256), check=_check_threads),
    ParamSpec('inference_streams', 0, 'Frames inferred at once, each on its share of the CPU '
              'threads (OpenVINO streams); 0: auto (2 with OpenVINO on a CPU of 2+ cores, '
              'else 1). More streams: more masks/s on a busy CPU, each mask later (one '
              "stream's inference time); 1: the lowest latency.", 'reload',
              range=(0, MAX_STREAMS)),
    ParamSpec('max_input_pixels', DEFAULT_MAX_INPUT_PIXELS, 'Largest input image (width x '
              'height) segmented; larger frames are refused before decoding (size read from '
              'the jpeg/png header or the Image fields) and counted as rejected.',
              range=(1, DECODER_MAX_PIXELS)),
    ParamSpec('image_topics', ['/camera/image_raw'], 'Input image topics; several cameras are '
              'batched into one inference call and get outputs under <output_prefix>/<camera>.',
              'startup', check=_check_topics),
    ParamSpec('compressed', False, 'Subscribe to sensor_msgs/CompressedImage on '
              '<topic>/compressed (jpeg or png) instead of sensor_msgs/Image.', 'startup'),
    ParamSpec('use_camera_info', False, 'Subscribe to <topic namespace>/camera_info and '
              'republish it with each mask on <output_prefix>/camera_info.', 'startup'),
    ParamSpec('depth_topic', '', 'Depth image registered to the (single) camera, 16UC1 mm '
              'or 32FC1 m, with its camera_info on <depth topic namespace>/camera_info; set, '
              'the node publishes the organized cloud <output_prefix>/points. Empty: no cloud.',
              'startup', check=_check_optional_topic),
    ParamSpec('output_prefix', 'segmentation', 'Namespace of the outputs (relative names '
              'follow the node namespace).', 'startup', check=_check_prefix),
    ParamSpec('max_rate', 0.0, 'Most frames segmented per second, per camera; 0: as fast as '
              'possible. Newer frames replace older ones while the node is busy.',
              range=(0.0, 1000.0)),
    ParamSpec('batch_wait', 0.01, 'With several cameras: seconds to wait, once one camera has '
              'a frame, for the others, so that they share one inference call.',
              range=(0.0, 5.0)),
    ParamSpec('overlay_alpha', 0.5, 'Weight of the class colours in the overlay (0: image '
              'only, 1: colours only).', range=(0.0, 1.0)),
    ParamSpec('confidence_threshold', 0.0, 'Pixels whose top class probability is below this '
              'get the ignore id in the mask; 0 disables.', range=(0.0, 1.0)),
    ParamSpec('temporal_smoothing', 1.0, 'Weight of the newest frame in a per-camera moving '
              'average of class probabilities (less flicker on a slow or still camera, lag in '
              'fast motion; reset on a size, frame_id or stamp jump); 1 = off.',
              range=(0.01, 1.0)),
    ParamSpec('publish_mask', True, 'Publish <output_prefix>/mask (mono8, mono16 above 255 '
              'classes).'),
    ParamSpec('publish_color_mask', True, 'Publish <output_prefix>/color_mask (rgb8).'),
    ParamSpec('publish_overlay', True, 'Publish <output_prefix>/overlay (bgr8).'),
    ParamSpec('publish_groups', True, 'Publish <output_prefix>/groups (mono8 group ids; needs '
              'class_groups).'),
    ParamSpec('publish_confidence', False, 'Publish <output_prefix>/confidence (32FC1).'),
    ParamSpec('publish_confidence_mono8', False, 'Publish <output_prefix>/confidence_mono8 '
              '(mono8, round(probability * 255); what Nav2 semantic layers read).'),
    ParamSpec('publish_points', True, 'Publish <output_prefix>/points (PointCloud2, needs '
              'depth_topic).'),
    ParamSpec('points_confidence', False, 'Add a float32 confidence field to the cloud.'),
    ParamSpec('depth_wait', 0.1, 'Most seconds to wait, once a mask is ready, for the depth '
              'image and camera_info of its stamp; without them the frame has no cloud.',
              range=(0.0, 5.0)),
    ParamSpec('depth_stamp_tolerance', 0.02, 'Largest stamp difference (s) between a frame '
              'and the depth image / camera_info used for its cloud.', range=(0.0, 1.0)),
    ParamSpec('publish_camera_info', True, 'Republish camera_info (needs use_camera_info).'),
    ParamSpec('autostart', False, 'Lifecycle node only: configure and activate itself at '
              'start (no lifecycle manager needed); the plain node always starts active.',
              'startup'),
    ParamSpec('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.', 'startup',
              range=(0.1, 60.0)),
    ParamSpec('stale_timeout', 5.0, 'Seconds without input after which a camera reports WARN.',
              range=(0.1, 3600.0)),
    ParamSpec('warn_input_age', 1.0, 'Input age at publish (s) above which a camera reports '
              'WARN.', range=(0.001, 3600.0)),
    ParamSpec('future_stamp_tolerance', 1.0, 'Seconds an input stamp may be ahead of the '
              "node's clock before the camera reports WARN naming the offset (a camera clock "
              'ahead).', range=(0.0, 86400.0)),
    ParamSpec('past_stamp_limit', 60.0, 'Seconds an input stamp may be behind the node\'s '
              'clock before the camera reports WARN naming the offset (a clock behind, a bag '
              'replayed without use_sim_time).', range=(0.001, 1e9)),
)
SPEC_BY_NAME: Dict[str, ParamSpec] = {spec.name: spec for spec in SPECS}


def _type_error(spec: ParamSpec, value: Any) -> Optional[str]:
    default = spec.default
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:  # list
        kind = type(default[0])
        ok = isinstance(value, (list, tuple)) or hasattr(value, 'tolist')
        ok = ok and all(isinstance(v, kind) and not isinstance(v, bool) for v in list(value))
    return None if ok else (f'expected {type(default).__name__}'
                            + (f' of {type(default[0]).__name__}' if isinstance(default, list)
                               else '') + f', got {value!r}')


def validate(name: str, value: Any) -> Optional[str]:
    """Why ``value`` is not valid for parameter ``name``, or ``None`` when it is."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return f"unknown parameter '{name}'"
    reason = _type_error(spec, value)
    if reason is None and spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        reason = f'must be in {spec.range[0]}..{spec.range[1]}, got {value}'
    if reason is None and spec.choices is not None and value not in spec.choices:
        reason = f'must be one of {", ".join(spec.choices)}, got {value!r}'
    if reason is None and spec.check is not None:
        reason = spec.check(list(value) if isinstance(spec.default, list) else value)
    return reason


def descriptor(spec: ParamSpec) -> Any:
    """The ``rcl_interfaces.msg.ParameterDescriptor`` of ``spec`` (imports rcl_interfaces)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    when = {'runtime': 'Can change at runtime.', 'reload': 'Changing it reloads the model.',
            'startup': 'Read-only after start.'}[spec.applies]
    desc = ParameterDescriptor(description=f'{spec.description} {when}',
                               read_only=spec.applies == 'startup')
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    elif spec.check is not None:
        desc.additional_constraints = spec.check.__name__.replace('_check_', 'valid ')
    if spec.range is not None:
        lo, hi = spec.range
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(lo),
                                                            to_value=float(hi), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return desc


@dataclass(frozen=True)
class NodeParams:
    """Validated node parameters: one field per entry of :data:`SPECS` (same name, the
    default's type, lists as tuples; see there for meanings and units). Build with
    :meth:`from_values`; ``test_params.py`` checks the fields against :data:`SPECS`."""

    model_path: str
    label_set: str
    class_groups: str
    backend: str
    device: str
    precision: str
    auto_agreement: float
    input_size: Tuple[int, ...]
    threads: int
    inference_streams: int
    max_input_pixels: int
    image_topics: Tuple[str, ...]
    compressed: bool
    use_camera_info: bool
    depth_topic: str
    output_prefix: str
    max_rate: float
    batch_wait: float
    overlay_alpha: float
    confidence_threshold: float
    temporal_smoothing: float
    publish_mask: bool
    publish_color_mask: bool
    publish_overlay: bool
    publish_groups: bool
    publish_confidence: bool
    publish_confidence_mono8: bool
    publish_points: bool
    points_confidence: bool
    depth_wait: float
    depth_stamp_tolerance: float
    publish_camera_info: bool
    autostart: bool
    diagnostics_period: float
    stale_timeout: float
    warn_input_age: float
    future_stamp_tolerance: float
    past_stamp_limit: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any], namespace: str = '/') -> 'NodeParams':
        """Defaults overridden by ``values``; raises :class:`ParamError` listing every problem.
        ``namespace``: the node's, against which relative topic names resolve
        (:func:`topics_problem`)."""
        merged = {spec.name: spec.default for spec in SPECS}
        merged.update(values)
        problems = [f'{name}: {reason}' for name, value in merged.items()
                    if (reason := validate(name, value)) is not None]
        if not problems and (reason := topics_problem(merged, namespace)):
            problems.append(reason)
        if merged['depth_topic'] and len(list(merged['image_topics'])) > 1:
            problems.append(f"depth_topic: works with one image topic, got "
                            f"{len(list(merged['image_topics']))} image_topics")
        if problems:
            raise ParamError('invalid parameters: ' + '; '.join(problems))
        converted = {}
        for spec in SPECS:
            value = merged[spec.name]
            if isinstance(spec.default, list):
                value = tuple(list(value))
            elif isinstance(spec.default, float):
                value = float(value)
            converted[spec.name] = value
        if not converted['model_path'].strip():
            converted['model_path'] = str(default_model_path())
        return cls(**converted)

    def with_changes(self, changes: Mapping[str, Any], namespace: str = '/') -> 'NodeParams':
        """A copy with ``changes`` applied, validated like :meth:`from_values`."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current = {k: list(v) if isinstance(v, tuple) else v for k, v in current.items()}
        current.update(changes)
        return type(self).from_values(current, namespace)

    @property
    def model_input_size(self) -> Optional[Tuple[int, int]]:
        """``input_size`` for the Segmenter: ``None`` means the model's own size."""
        size = tuple(self.input_size)
        return None if size == (0, 0) else (int(size[0]), int(size[1]))

    def model_settings(self) -> Tuple[Any, ...]:
        """The values whose change needs a model reload."""
        return tuple(getattr(self, s.name) for s in SPECS if s.applies == 'reload')


def reload_needed(old: NodeParams, new: NodeParams) -> bool:
    """Whether going from ``old`` to ``new`` needs the model reloaded."""
    return old.model_settings() != new.model_settings()


#: Seconds a params file may take to read: a FIFO nobody writes to is refused after this.
PARAMS_FILE_TIMEOUT_S = 5.0


def read_params_file(path: str, timeout_s: float = PARAMS_FILE_TIMEOUT_S) -> str:
    """The text of the ROS 2 params file ``path``, read once and checked: a regular file or a
    pipe (``--params-file <(...)``), within the size and time bounds of
    :mod:`bisenet_ros.user_files` and the YAML bounds of :mod:`bisenet_ros.limits`, shaped
    ``<node>: {ros__parameters: {...}}`` (namespaces allowed). Hand rcl this text, not the
    path: a pipe cannot be read twice. Raises :class:`~bisenet_ros.limits.LimitError`, one
    line naming the file."""
    from ..user_files import read_text
    text = read_text(path, 'params file', timeout_s=timeout_s, allow_pipe=True)
    problem = params_text_problem(text, path)
    if problem is not None:
        raise LimitError(problem)
    return text


def params_text_problem(text: str, path: str) -> Optional[str]:
    """Why ``text`` (read from ``path``) is not a usable params file, or ``None``."""
    try:
        data = parse_yaml(text, f'params file {shorten(path, 120)}', any_tags=True)
    except LimitError as exc:  # rcl ignores tags, and so does this
        return str(exc)

    def problem(node: Any, where: str) -> Optional[str]:
        if not isinstance(node, dict) or not node:
            return f'{where}: expected a mapping of node names, got {type(node).__name__}'
        if 'ros__parameters' in node:
            params = node['ros__parameters']
            return None if isinstance(params, dict) else \
                f'{where}/ros__parameters: expected a mapping, got {type(params).__name__}'
        return next((p for k, v in node.items() if (p := problem(v, f'{where}/{k}'))), None)
    found = problem(data, '')
    return None if found is None else \
        f'params file {shorten(path, 120)}: {shorten(found.lstrip("/"))}'


def params_file_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a usable ROS 2 params file (see :func:`read_params_file`), or
    ``None``. One line, naming the file. Reads the file: never call it on a pipe that rcl
    must read after it."""
    try:
        read_params_file(path)
    except LimitError as exc:
        return str(exc)
    return None


def markdown_table() -> str:
    """The parameter table of the README (name, default, when a change applies, meaning), made
    from :data:`SPECS`; ``test_params.py`` checks that the README holds exactly this."""
    when = {'runtime': 'runtime', 'reload': 'reload', 'startup': 'start'}
    rows = ['| parameter | default | applies | meaning |', '| --- | --- | --- | --- |']
    for spec in SPECS:
        default = spec.default if spec.name != 'model_path' else "'' (packaged model)"
        if isinstance(default, str) and spec.name != 'model_path':
            default = repr(default)
        text = spec.description
        if spec.choices:
            text += ' One of ' + ', '.join(spec.choices) + '.'
        if spec.range is not None:
            text += f' Range {spec.range[0]}..{spec.range[1]}.'
        text = text.replace('<', '\\<')  # not an HTML tag
        rows.append(f'| `{spec.name}` | `{default}` | {when[spec.applies]} | {text} |')
    return '\n'.join(rows)


if __name__ == '__main__':  # python -m bisenet_ros.ros.params: the README's table
    print(markdown_table())


__all__ = ['BACKENDS', 'PRECISIONS', 'ParamError', 'ParamSpec', 'SPECS', 'SPEC_BY_NAME',
           'validate', 'descriptor', 'NodeParams', 'reload_needed', 'params_file_problem',
           'read_params_file', 'params_text_problem', 'resolve_topic', 'topics_problem']
