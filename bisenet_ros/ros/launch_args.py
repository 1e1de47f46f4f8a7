"""Launch-argument text -> node parameter values, with errors that name the argument.

``ros2 launch`` hands every argument over as text. This module (pure Python, no ROS imports)
turns that text into the typed value of the node parameter it sets, and refuses anything else
with a message naming the argument, what arrived and what is accepted, e.g.
``launch argument max_rate:='abc' is not a number; expected a number in 0.0..1000.0``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from .params import SPEC_BY_NAME, validate

#: Boolean spellings ROS accepts for a parameter given as text (YAML 1.1, as rcl parses it).
TRUE_WORDS = ('true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', '1')
FALSE_WORDS = ('false', 'False', 'FALSE', 'no', 'No', 'NO', 'off', 'Off', 'OFF', '0')


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
    if value != value or (span and not low <= value <= high):  # NaN, or out of range
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


__all__ = ['FALSE_WORDS', 'LaunchArgError', 'TRUE_WORDS', 'overrides', 'parse_bool',
           'parse_number', 'parse_param']
