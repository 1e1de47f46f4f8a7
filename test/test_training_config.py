"""Training configuration: shipped YAMLs, overrides, validation, CLI flags."""

import argparse
from pathlib import Path

import pytest
import yaml

from bisenet_ros.tools import train as train_tool
from bisenet_ros.training.config import ConfigError, load_config, parse_override, save_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / 'config' / 'train'


@pytest.mark.parametrize('name', ['camvid.yaml', 'camvid_cpu.yaml', 'cityscapes.yaml',
                                  'camvid_holdout_baseline.yaml', 'camvid_holdout_recipe.yaml'])
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
    ('dataset.train_split=[]', 'dataset.train_split must be a split name or a non-empty list'),
    ('dataset.train_split=[train, 3]', 'dataset.train_split must be'),
    ('dataset.holdout_sequences=0006R0', r'dataset.holdout_sequences must be a list'),
    ('dataset.holdout_sequences=[16]', r"quoted strings, e.g. \['0006R0'\]"),
    ('dataset.val_split=[val]', 'dataset.val_split must be a split name, holdout or null'),
    ('train.ema_decay=1', r'train.ema_decay must be null \(off\) or a number in \(0, 1\)'),
    ('train.ema_decay=true', 'train.ema_decay must be'),
    ('train.photometric=wild', "unknown preset 'wild'.*strong"),
    ('train.photometric={hue: 0.1, sharpen: 1}', "unknown key 'sharpen'"),
    ('train.photometric={blur_prob: 1.5}', r'train.photometric.blur_prob must be'),
    ('train.photometric={noise_std: -1}', r'train.photometric.noise_std must be a number >= 0'),
    ('train.photometric=[1]', 'must be null, a preset name or a mapping'),
    ('train.copy_paste.prob=1.5',
     r'train.copy_paste.prob must be a number in \[0, 1\] \(0 = off\), got 1.5'),
    ('train.copy_paste.prob=0.5', 'train.copy_paste.classes must name at least one class'),
    ('train.copy_paste.classes=pole', 'train.copy_paste.classes must be a list of class names'),
    ('train.copy_paste.max_sources=0', 'train.copy_paste.max_sources must be an integer >= 1'),
    ('train.copy_paste.sources=2', "unknown config key 'train.copy_paste.sources'"),
    ('train.copy_paste=0.5', "'train.copy_paste' is a section"),
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


def test_the_two_holdout_configs_differ_only_in_the_recipe():
    base = load_config(CONFIG_DIR / 'camvid_holdout_baseline.yaml')
    recipe = load_config(CONFIG_DIR / 'camvid_holdout_recipe.yaml')
    assert base['dataset'] == recipe['dataset']
    assert base['dataset']['holdout_sequences'] == ['0006R0']
    assert base['dataset']['val_split'] == 'holdout'
    assert base['train']['photometric'] is None and base['train']['ema_decay'] is None
    assert recipe['train']['photometric'] == 'strong' and recipe['train']['ema_decay'] == 0.999
    assert base['train']['scale_range'] == [0.75, 1.5]
    assert recipe['train']['scale_range'] == [0.5, 2.0]  # the paper's
    assert base['train']['copy_paste']['prob'] == 0.0
    assert recipe['train']['copy_paste'] == {'prob': 0.5, 'max_sources': 2,
                                             'classes': recipe['train']['rare_classes']}
    differ = {k for k in base['train'] if base['train'][k] != recipe['train'][k]}
    assert differ == {'photometric', 'ema_decay', 'scale_range', 'copy_paste'}
    assert base['val'] == recipe['val'] and base['model'] == recipe['model']
    assert base['output_dir'] != recipe['output_dir']
    # today's recipe: the long run's config, but for the data, schedule length and logging
    today = load_config(CONFIG_DIR / 'camvid_cpu.yaml')
    same = {k for k in today['train'] if today['train'][k] == base['train'][k]}
    assert set(today['train']) - same == {'iterations'}
