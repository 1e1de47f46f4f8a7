"""Training state -> project checkpoint (the format ``load_model`` and the node read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from ..labels import LabelSet, load_label_set
from ..model.checkpoint import save_checkpoint
from ..model.factory import build_model
from .state import load_train_state


def export_model(model: torch.nn.Module, label_set: LabelSet, path: Union[str, Path], *,
                 config: Dict[str, Any], iterations: int, val_miou: float, command: str = '',
                 extra: Optional[Dict[str, Any]] = None) -> Path:
    """Save ``model`` (booster heads dropped) with the label set and training metadata."""
    train = config['train']
    meta: Dict[str, Any] = {
        'command': command,
        'iterations': int(iterations),
        'planned_iterations': int(train['iterations']),
        'val_miou': None if val_miou != val_miou else float(val_miou),
        'val_scale': float(config['val']['scale']),
        'train_base_scale': float(train['base_scale']),
        'dataset': str(config['dataset']['kind']),
        'config': config,
    }
    meta.update(extra or {})
    crop = train['crop']
    return save_checkpoint(path, model, label_set, variant=config['model']['variant'],
                           input_size=crop, meta=meta)


def made_by_run(checkpoint: Union[str, Path], config: Dict[str, Any]) -> bool:
    """True when ``checkpoint`` (a project checkpoint) was written by the run that ``config``
    describes, or by a branch of it (see :func:`warm_start_iteration`), so it can warm-start that
    run; False for other or unreadable files."""
    from ..model.checkpoint import CheckpointError, read_checkpoint
    try:
        _, info = read_checkpoint(checkpoint)
    except CheckpointError:
        return False
    return warm_start_iteration(info.meta, config) is not None


def warm_start_iteration(meta: Mapping[str, Any], config: Mapping[str, Any]) -> Optional[int]:
    """The iteration of the run ``config`` describes at which a packaged model with ``meta``
    picks it up: the iteration it records when that run wrote it (same output folder and
    planned iterations); the branch point when it was trained by a branch of that run (meta
    ``branched_from``: ``output_dir``, ``planned_iterations`` and ``iteration`` of the run whose
    state the branch started from, e.g. a short annealing run); else ``None``."""
    planned = int(config['train']['iterations'])
    made_with = meta.get('config') or {}
    if made_with.get('output_dir') == config['output_dir'] and \
            meta.get('planned_iterations') == planned:
        at = meta.get('iterations')
    else:
        branch = meta.get('branched_from') or {}
        if branch.get('output_dir') != config['output_dir'] or \
                branch.get('planned_iterations') != planned:
            return None
        at = branch.get('iteration')
    return at if isinstance(at, int) and not isinstance(at, bool) else None


def export_train_state(state_path: Union[str, Path], out_path: Union[str, Path], *,
                       command: str = '', extra: Optional[Dict[str, Any]] = None) -> Path:
    """Convert a ``last.pt``/``best.pt`` training state into a project checkpoint."""
    state = load_train_state(state_path)
    model, label_set, config = model_from_train_state(state_path)
    miou = float(state.get('extra', {}).get('last_miou', float('nan')))
    more = {'source_state': str(state_path), 'best_val_miou': float(state['best_miou'])}
    more.update(extra or {})
    command = command or str(state.get('extra', {}).get('command', ''))
    return export_model(model, label_set, out_path, config=config,
                        iterations=int(state['iteration']), val_miou=miou, command=command,
                        extra=more)


def model_from_train_state(state_path: Union[str, Path]):
    """``(model, label_set, config)`` of a training state; eval mode, booster heads kept. The
    weights are the run's weight average when it keeps one (``train.ema_decay``): what it
    validated and exports."""
    state = load_train_state(state_path)
    config = state['config']
    data = config['dataset']
    label_set = load_label_set(data.get('label_set') or
                               ('cityscapes' if data['kind'] == 'cityscapes' else 'camvid'))
    model = build_model(config['model']['variant'], label_set.num_classes, aux_heads=True)
    model.load_state_dict((state.get('ema') or {}).get('model') or state['model'])
    return model.eval(), label_set, config
