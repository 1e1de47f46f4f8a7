"""Training configuration: defaults, YAML files, ``key.sub=value`` overrides, validation.

A config is a nested dict with the sections of :data:`DEFAULTS`. Files only need the keys they
change. ``--set train.lr=0.01`` style overrides parse their value as YAML (numbers, lists, null).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Union

import yaml

from ..limits import LimitError
from ..user_files import load_yaml, write_atomic

DEFAULTS: Dict[str, Any] = {
    'dataset': {
        'kind': 'camvid',          # camvid | cityscapes | folder
        'root': None,              # camvid / cityscapes root folder
        'label_set': None,         # name or YAML path; default from kind
        'train_split': 'train',    # a split name or a list of them (trained together)
        'holdout_sequences': [],   # sequences (frame name prefix) left out of training
        'val_split': 'val',        # a split name, or holdout (the held-out sequences' frames)
        'train_images': None, 'train_labels': None,   # kind=folder
        'val_images': None, 'val_labels': None,
        'cache': True,             # keep decoded frames in memory
    },
    'model': {
        'variant': 'bisenetv2',
        'init': None,              # checkpoint to start from (fine-tuning); shape-mismatched
    },                             # tensors (e.g. another class count) stay freshly initialised
    'train': {
        'iterations': 1000,
        'batch_size': 8,           # global, over all processes
        'crop': [512, 1024],       # H, W
        'base_scale': 1.0,
        'scale_range': [0.5, 2.0],
        'hflip': 0.5,
        'brightness': 0.4, 'contrast': 0.4, 'saturation': 0.4,
        'lr': 0.05,
        'momentum': 0.9,
        'weight_decay': 5.0e-4,
        'head_lr_mult': 10.0,
        'warmup_iterations': 100,
        'warmup_ratio': 0.1,
        'poly_power': 0.9,
        'ohem_thresh': 0.7,
        'ohem_min_kept_divisor': 16,
        'aux_weight': 1.0,
        'class_weights': None,     # loss weight per class: null (all 1), enet, or a list
        'rare_classes': [],        # class names that crops favour (see rare_crop_prob)
        'rare_crop_prob': 0.0,     # share of crops placed around a rare-class pixel
        'photometric': None,       # more photometric augmentation: null, strong or a mapping
        'ema_decay': None,         # EMA of the weights (e.g. 0.999), validated and exported
        'copy_paste': {            # rare-class copy-paste (see training/copy_paste.py):
            'prob': 0.0,           # share of samples that get pasted objects; 0 = off
            'classes': [],         # class names whose pixels are pasted
            'max_sources': 1,      # source frames per sample: uniform in 1..max_sources
        },
        'amp': True,               # float16 autocast + GradScaler on CUDA
        'cpu_bf16': 'auto',        # bfloat16 autocast on CPU: auto = where the CPU has native
        'channels_last': 'auto',   # bf16 (AVX512-BF16/AMX); channels_last memory format: same
        'compile': False,          # torch.compile the model (see docs/TRAINING.md)
        'matmul_upsample': True,   # heads' final upsample as two matmuls (same values, faster)
        'sync_bn': True,           # SyncBatchNorm under DDP on GPUs (torch has no CPU one)
        'num_workers': 0,
        'threads': None,           # torch.set_num_threads
        'seed': 0,
        'max_time_min': None,      # stop early (cleanly) after this wall time
        'device': 'auto',          # auto | cpu | cuda
    },
    'val': {
        'every': 500,              # iterations; 0 = only at the end
        'scale': 1.0,              # resize factor of val frames
        'max_images': None,
    },
    'log': {'every': 10, 'checkpoint_every': 100, 'tensorboard': True, 'progress': 'auto'},
    'output_dir': 'runs/train',
}


class ConfigError(ValueError):
    """Bad configuration: the message names the key and the value."""


def merge(base: Mapping[str, Any], update: Mapping[str, Any], where: str = '') -> Dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``; unknown keys raise :class:`ConfigError`."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        path = f'{where}{key}'
        if key not in out:
            raise ConfigError(f"unknown config key '{path}'; known keys here: {sorted(out)}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{path}' is a section, got {value!r}")
            out[key] = merge(out[key], value, path + '.')
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> Dict[str, Any]:
    """``'train.lr=0.01'`` -> ``{'train': {'lr': 0.01}}`` (value parsed as YAML)."""
    if '=' not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split('=', 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc})") from exc
    nested: Dict[str, Any] = {}
    cursor = nested
    parts = key.strip().split('.')
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def load_config(path: Union[str, Path, None] = None, overrides: Iterable[str] = ()
                ) -> Dict[str, Any]:
    """Defaults <- YAML file <- overrides, validated."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        try:
            data = load_yaml(path, 'config') or {}
        except LimitError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(data, dict):
            raise ConfigError(f'config {path}: expected a mapping at the top level')
        config = merge(config, data)
    for text in overrides:
        config = merge(config, parse_override(text))
    validate(config)
    return config


def validate(config: Mapping[str, Any]) -> None:
    """Check value ranges that would otherwise fail late; raises :class:`ConfigError`."""
    t = config['train']
    for key in ('iterations', 'batch_size'):
        if not isinstance(t[key], int) or t[key] < 1:
            raise ConfigError(f'train.{key} must be a positive integer, got {t[key]!r}')
    crop = t['crop']
    if crop is not None and (not isinstance(crop, list) or len(crop) != 2
                             or not all(isinstance(v, int) and v > 0 for v in crop)):
        raise ConfigError(f'train.crop must be [H, W] positive integers or null, got {crop!r}')
    lo, hi = t['scale_range']
    if not 0 < lo <= hi:
        raise ConfigError(f'train.scale_range must be [lo, hi] with 0 < lo <= hi, got '
                          f'{t["scale_range"]!r}')
    if t['lr'] <= 0:
        raise ConfigError(f'train.lr must be > 0, got {t["lr"]!r}')
    if t['device'] not in ('auto', 'cpu', 'cuda'):
        raise ConfigError(f"train.device must be auto, cpu or cuda, got {t['device']!r}")
    if not isinstance(t['matmul_upsample'], bool):
        raise ConfigError(f"train.matmul_upsample must be true or false, got "
                          f"{t['matmul_upsample']!r}")
    for key in ('cpu_bf16', 'channels_last'):
        if t[key] not in (True, False, 'auto', None):
            raise ConfigError(f"train.{key} must be true, false or auto, got {t[key]!r}")
    if not isinstance(t['rare_classes'], list) or \
            not all(isinstance(n, str) for n in t['rare_classes']):
        raise ConfigError(f"train.rare_classes must be a list of class names, got "
                          f"{t['rare_classes']!r}")
    if not 0.0 <= float(t['rare_crop_prob']) <= 1.0:
        raise ConfigError(f"train.rare_crop_prob must be in [0, 1], got {t['rare_crop_prob']!r}")
    weights = t['class_weights']
    if not (weights is None or weights == 'enet' or (
            isinstance(weights, list) and weights
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0
                    for w in weights))):
        raise ConfigError(f"train.class_weights must be null, 'enet' or a list of positive "
                          f"numbers (one per class), got {weights!r}")
    ema = t['ema_decay']
    if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float))
                            or not 0 < ema < 1):
        raise ConfigError(f'train.ema_decay must be null (off) or a number in (0, 1), e.g. '
                          f'0.999, got {ema!r}')
    from .transforms import photometric_settings  # numpy/OpenCV/torch: only when validating
    try:
        photometric_settings(t['photometric'])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from .copy_paste import check_copy_paste
    try:
        check_copy_paste(t['copy_paste'])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(config['val']['every'], int) or config['val']['every'] < 0:
        raise ConfigError(f"val.every must be an integer >= 0, got {config['val']['every']!r}")
    _validate_dataset(config['dataset'])


def _names(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _validate_dataset(d: Mapping[str, Any]) -> None:
    split = d['train_split']
    if not (isinstance(split, str) and split or _names(split) and split):
        raise ConfigError(f'dataset.train_split must be a split name or a non-empty list of '
                          f'split names, got {split!r}')
    if not _names(d['holdout_sequences']):
        raise ConfigError(f"dataset.holdout_sequences must be a list of sequence names (quoted "
                          f"strings, e.g. ['0006R0']), got {d['holdout_sequences']!r}")
    if d['val_split'] is not None and not (isinstance(d['val_split'], str) and d['val_split']):
        raise ConfigError(f"dataset.val_split must be a split name, holdout or null, got "
                          f"{d['val_split']!r}")


def save_config(config: Mapping[str, Any], path: Union[str, Path]) -> None:
    """Write the resolved config as YAML."""
    write_atomic(path, yaml.safe_dump(dict(config), sort_keys=False))
