"""Training configuration: shipped YAMLs, overrides, validation, CLI flags."""

import argparse
from pathlib import Path

import pytest
import yaml

from bisenet_ros.tools import train as train_tool
from bisenet_ros.training.config import ConfigError, load_config, parse_override, save_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / 'config' / 'train'


@pytest.mark.parametrize('name', ['camvid.yaml', 'camvid_cpu.yaml', 'cityscapes.yaml'])
def test_shipped_configs_load(name):
    config = load_config(CONFIG_DIR / name)
    assert config['dataset']['kind'] in ('camvid', 'cityscapes')
    assert config['train']['iterations'] > 0 and config['train']['ohem_thresh'] == 0.7


def test_overrides_parse_yaml_values_and_win(tmp_path):
    assert parse_override('train.crop=[64, 96]') == {'train': {'crop': [64, 96]}}
    config = load_config(CONFIG_DIR / 'camvid.yaml',
                         ['train.lr=0.01', 'val.scale=0.5', 'train.max_time_min=null'])
    assert config['train']['lr'] == 0.01 and config['val']['scale'] == 0.5
    assert config['train']['max_time_min'] is None
    save_config(config, tmp_path / 'resolved.yaml')
    assert yaml.safe_load((tmp_path / 'resolved.yaml').read_text()) == config


@pytest.mark.parametrize('override, message', [
    ('train.lrr=1', "unknown config key 'train.lrr'"),
    ('train=3', "'train' is a section"),
    ('train.iterations=0', 'train.iterations must be a positive integer'),
    ('train.crop=[1]', 'train.crop must be'),
    ('train.scale_range=[2, 1]', 'scale_range'),
    ('train.device=tpu', 'train.device'),
    ('train.class_weights=[1, -2]', 'train.class_weights must be null'),
    ('train.class_weights=median', 'train.class_weights must be null'),
    ('train.matmul_upsample=sometimes', 'train.matmul_upsample must be true or false'),
    ('noequals', 'section.key=value'),
])
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match='nope.yaml'):
        load_config(tmp_path / 'nope.yaml')


def test_cli_flags_become_overrides():
    parser = argparse.ArgumentParser()
    train_tool.add_arguments(parser)
    args = parser.parse_args(['--set', 'train.lr=0.2', '--iterations', '7', '--lr', '0.3',
                              '--output-dir', 'x', '--max-time-min', '5'])
    config = load_config(None, train_tool.overrides_from(args))
    assert config['train']['iterations'] == 7 and config['train']['lr'] == 0.3
    assert config['output_dir'] == 'x' and config['train']['max_time_min'] == 5.0
