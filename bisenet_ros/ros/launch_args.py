"""Launch-argument text -> node parameter values, with errors that name the argument.

``ros2 launch`` hands every argument over as text. This module (pure Python, no ROS imports)
turns that text into the typed value of the node parameter it sets, and refuses anything else
with a message naming the argument, what arrived and what is accepted, e.g.
``launch argument max_rate:='abc' is not a number; expected a number in 0.0..1000.0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

from .params import SPEC_BY_NAME, validate

#: Boolean spellings ROS accepts for a parameter given as text (YAML 1.1, as rcl parses it).
TRUE_WORDS = ('true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', '1')
FALSE_WORDS = ('false', 'False', 'FALSE', 'no', 'No', 'NO', 'off', 'Off', 'OFF', '0')


@dataclass(frozen=True)
class LaunchArg:
    """One argument of the launch files: its default text, description and the node
    parameter it overrides when not empty (``None``: used by the launch file itself)."""

    name: str
    default: str
    description: str
    param: Optional[str] = None


def _choices(param: str) -> str:
    """'a, b or c' from the parameter's choices (the registry's lists, never a copy)."""
    choices = SPEC_BY_NAME[param].choices or ()
    return ', '.join(choices[:-1]) + f' or {choices[-1]}' if len(choices) > 1 else ''.join(choices)


def _file_value(param: str) -> str:
    return f"Empty: the params file's {param} (default {SPEC_BY_NAME[param].default!r})."


#: Every argument of segment.launch.py, in --show-args order; segment_nav2.launch.py takes the
#: same ones with other defaults (:data:`NAV2_DEFAULTS`). ``params_file``'s default (the
#: installed config/segmentation.yaml) is filled in by the launch file.
ARGUMENTS: Tuple[LaunchArg, ...] = (
    LaunchArg('image_topics', '', 'Input image topic, or several separated by commas (one model, '
              'batched; outputs under segmentation/<camera>/). ' + _file_value('image_topics'),
              'image_topics'),
    LaunchArg('model', '', 'Model file (.pt/.pth checkpoint, .onnx, TensorRT .engine). Empty: '
              "the params file's model_path (default: the packaged CamVid model).", 'model_path'),
    LaunchArg('backend', '', f'Inference runtime: {_choices("backend")}. '
              + _file_value('backend'), 'backend'),
    LaunchArg('precision', '', f'Numeric precision: {_choices("precision")} (backend '
              'permitting). ' + _file_value('precision'), 'precision'),
    LaunchArg('device', '', "Device: cpu, cuda[:<index>], gpu[:<index>] (OpenVINO) or auto. "
              + _file_value('device'), 'device'),
    LaunchArg('params_file', '', 'YAML file with the node parameters (default: the installed '
              'config/segmentation.yaml).'),
    LaunchArg('namespace', '', 'Namespace of the node; its relative output topics follow it.'),
    LaunchArg('max_rate', '', 'Most frames segmented per second per camera (0: unlimited). '
              + _file_value('max_rate'), 'max_rate'),
    LaunchArg('compressed', '', 'true: subscribe to sensor_msgs/CompressedImage on '
              '<topic>/compressed. Booleans take true/false, yes/no, on/off, 1/0. '
              + _file_value('compressed'), 'compressed'),
    LaunchArg('depth_topic', '', 'Depth image registered to the camera (16UC1 mm or 32FC1 m; its '
              'camera_info beside it): publishes the organized cloud segmentation/points. '
              + _file_value('depth_topic'), 'depth_topic'),
    LaunchArg('confidence_mono8', '', 'true: also publish segmentation/confidence_mono8 (0-255), '
              'as Nav2 semantic layers read it. ' + _file_value('publish_confidence_mono8'),
              'publish_confidence_mono8'),
    LaunchArg('lifecycle', 'false', 'true: run the managed (lifecycle) node; it waits '
              'unconfigured for `ros2 lifecycle set /segmentation_node configure` and '
              '`activate`, unless autostart is true.'),
    LaunchArg('autostart', '', 'true: the lifecycle node configures and activates itself '
              '(lifecycle:=true only). ' + _file_value('autostart'), 'autostart'),
    LaunchArg('use_fastdds_profile', 'true', 'Give the node the Fast DDS profile '
              'config/fastdds_large_images.xml (large shared-memory segment and deeper '
              'history). Publishers of images to the node should load it too: '
              'FASTDDS_DEFAULT_PROFILES_FILE=<share>/bisenet_ros/config/fastdds_large_images.xml '
              '(docs/nav2.md).'),
    LaunchArg('log_level', 'info', 'Node log level: debug, info, warn, error.'),
)

#: The defaults segment_nav2.launch.py gives instead: the outputs Nav2's semantic layer reads.
NAV2_DEFAULTS: Dict[str, str] = {'image_topics': '/camera/color/image_raw',
                                 'depth_topic': '/camera/aligned_depth_to_color/image_raw',
                                 'confidence_mono8': 'true'}

#: Launch argument -> node parameter it overrides when not empty.
PARAM_ARGS: Dict[str, str] = {a.name: a.param for a in ARGUMENTS if a.param is not None}


class LaunchArgError(ValueError):
    """A launch argument's text does not parse; the message names it and what is accepted."""


def parse_bool(arg: str, text: str) -> bool:
    """``text`` of launch argument ``arg`` as a boolean (any of ROS's spellings)."""
    value = text.strip()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise LaunchArgError(f'launch argument {arg}:={text!r} is not a boolean; expected one of '
                         'true/false, yes/no, on/off, 1/0 (any case: True, TRUE, ...)')


def parse_number(arg: str, text: str, low: Optional[float] = None,
                 high: Optional[float] = None) -> float:
    """``text`` of launch argument ``arg`` as a float in ``low..high`` (when given)."""
    span = f' in {low}..{high}' if low is not None and high is not None else ''
    try:
        value = float(text.strip())
    except ValueError:
        raise LaunchArgError(f'launch argument {arg}:={text!r} is not a number; expected a '
                             f'number{span}') from None
    outside = low is not None and high is not None and not low <= value <= high
    if value != value or outside:  # NaN, or out of range
        raise LaunchArgError(f'launch argument {arg}:={text!r} is out of range; expected a '
                             f'number{span}')
    return value


def parse_param(arg: str, text: str, param: str) -> Any:
    """``text`` of launch argument ``arg`` as the value of node parameter ``param``.

    Booleans take ROS's spellings, floats a number in the parameter's range, strings with
    choices one of those; lists of strings are comma-separated. Raises :class:`LaunchArgError`.
    """
    spec = SPEC_BY_NAME[param]
    if isinstance(spec.default, bool):
        value: Any = parse_bool(arg, text)
    elif isinstance(spec.default, float):
        low, high = spec.range if spec.range is not None else (None, None)
        value = parse_number(arg, text, low, high)
    elif isinstance(spec.default, list):
        value = [item.strip() for item in text.split(',') if item.strip()]
    else:
        value = text.strip()
    reason = validate(param, value)
    if reason is not None:
        accepted = f'one of {", ".join(spec.choices)}' if spec.choices else reason
        raise LaunchArgError(f'launch argument {arg}:={text!r} is not valid for parameter '
                             f'{param}; expected {accepted}')
    return value


def overrides(given: Mapping[str, str], arg_to_param: Mapping[str, str]) -> Dict[str, Any]:
    """Node parameter overrides from the non-empty launch arguments ``given``.

    ``arg_to_param`` maps launch-argument names to parameter names; an empty (or blank)
    argument keeps the params file's value and is left out. Raises :class:`LaunchArgError`
    for the first argument that does not parse.
    """
    result: Dict[str, Any] = {}
    for arg, param in arg_to_param.items():
        text = given.get(arg, '')
        if text.strip():
            result[param] = parse_param(arg, text, param)
    return result


__all__ = ['ARGUMENTS', 'FALSE_WORDS', 'LaunchArg', 'LaunchArgError', 'NAV2_DEFAULTS',
           'PARAM_ARGS', 'TRUE_WORDS', 'overrides', 'parse_bool',
           'parse_number', 'parse_param']
