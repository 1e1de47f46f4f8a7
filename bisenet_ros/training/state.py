"""Training-state checkpoints (``last.pt``, ``best.pt``): everything an exact resume needs.

A state file holds the model (with booster heads), optimiser, AMP scaler, the next iteration,
the torch RNG states, the resolved config, the best validation mIoU so far and, for runs with
``train.ema_decay``, the weight average (``ema``: :meth:`.ema.WeightEma.state_dict`). The data
order and augmentation are pure functions of ``(seed, iteration)`` (:mod:`.sampler`), so the
iteration is all the data pipeline needs. Files hold only tensors and plain data and are read
with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from ..model.checkpoint import atomic_torch_save

TRAIN_STATE_FORMAT = 'bisenet_ros.train_state'


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model inside a ``DistributedDataParallel`` wrapper."""
    return getattr(model, 'module', model)


def rng_state() -> Dict[str, Any]:
    state: Dict[str, Any] = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_train_state(path: Union[str, Path], *, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, scaler: Optional[Any], iteration: int,
                     config: Dict[str, Any], best_miou: float, extra: Optional[Dict] = None,
                     ema: Optional[Dict[str, Any]] = None) -> Path:
    """Write a state file atomically; ``iteration`` is the next iteration to run; ``ema`` is
    the weight average's state (absent from the file when ``None``)."""
    payload = {
        'format': TRAIN_STATE_FORMAT,
        'iteration': int(iteration),
        'model': {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        'optimizer': optimizer.state_dict(),
        'scaler': scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        'rng': rng_state(),
        'config': config,
        'best_miou': float(best_miou),
        'extra': dict(extra or {}),
    }
    if ema is not None:
        payload['ema'] = ema
    return atomic_torch_save(payload, path)


def load_train_state(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a state file; ``ValueError`` naming the file if it is not one."""
    where = str(path)
    if not os.path.isfile(where):
        raise FileNotFoundError(f'training state {where}: no such file')
    try:
        data = torch.load(where, map_location='cpu', weights_only=True)
    except Exception as exc:  # corrupt, truncated, or pickled code
        raise ValueError(f'training state {where}: cannot be read safely: {exc}') from exc
    if not isinstance(data, dict) or data.get('format') != TRAIN_STATE_FORMAT:
        raise ValueError(f"training state {where}: not a '{TRAIN_STATE_FORMAT}' file (a project "
                         'checkpoint cannot be resumed; start a new run from it instead)')
    return data
