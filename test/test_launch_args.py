"""Launch-argument parsing: typed values, ROS boolean spellings, errors naming the argument."""

import pytest

from bisenet_ros.ros.launch_args import (FALSE_WORDS, LaunchArgError, overrides, parse_bool,
                                         parse_number, parse_param, TRUE_WORDS)


@pytest.mark.parametrize('word', TRUE_WORDS)
def test_true_spellings(word):
    assert parse_bool('compressed', f' {word} ') is True


@pytest.mark.parametrize('word', FALSE_WORDS)
def test_false_spellings(word):
    assert parse_bool('compressed', word) is False


@pytest.mark.parametrize('word', ['', 'tru', 'enabled', '2', 'y'])
def test_other_words_are_refused_naming_argument_and_accepted_values(word):
    with pytest.raises(LaunchArgError) as info:
        parse_bool('compressed', word)
    message = str(info.value)
    assert f'compressed:={word!r}' in message
    assert 'true/false' in message and 'on/off' in message


def test_numbers_in_range_and_refused_with_the_reason():
    assert parse_number('max_rate', ' 7.5 ', 0.0, 1000.0) == 7.5
    with pytest.raises(LaunchArgError, match=r"max_rate:='abc' is not a number; expected a "
                                             r'number in 0.0..1000.0'):
        parse_number('max_rate', 'abc', 0.0, 1000.0)
    with pytest.raises(LaunchArgError, match=r"max_rate:='-1' is out of range"):
        parse_number('max_rate', '-1', 0.0, 1000.0)
    with pytest.raises(LaunchArgError, match='out of range'):
        parse_number('max_rate', 'nan', 0.0, 1000.0)


def test_parse_param_follows_the_parameter_type():
    assert parse_param('compressed', 'on', 'compressed') is True
    assert parse_param('max_rate', '2', 'max_rate') == 2.0
    assert parse_param('image_topics', '/a/image, /b/image,', 'image_topics') == \
        ['/a/image', '/b/image']
    assert parse_param('backend', 'torch', 'backend') == 'torch'
    with pytest.raises(LaunchArgError, match=r"backend:='trt' is not valid for parameter "
                                             r'backend; expected one of auto, torch'):
        parse_param('backend', 'trt', 'backend')
    with pytest.raises(LaunchArgError, match=r"image_topics:='1bad' .*not valid ROS topic"):
        parse_param('image_topics', '1bad', 'image_topics')


def test_overrides_leave_out_empty_arguments():
    mapping = {'model': 'model_path', 'max_rate': 'max_rate', 'compressed': 'compressed'}
    assert overrides({'model': '', 'max_rate': ' ', 'compressed': 'False'}, mapping) == \
        {'compressed': False}
    with pytest.raises(LaunchArgError, match='max_rate'):
        overrides({'max_rate': 'fast'}, mapping)
