"""Optimiser parameter groups and the warm-up + poly learning-rate schedule."""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

#: Top-level module names trained with ``head_lr_mult`` (the segmentation and booster heads).
HEAD_PREFIXES = ('head', 'aux2', 'aux3', 'aux4', 'aux5_4')


def lr_factor(iteration: int, max_iterations: int, *, warmup_iterations: int = 0,
              warmup_ratio: float = 0.1, power: float = 0.9) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based), a pure function.

    Linear warm-up from ``warmup_ratio`` to 1 over ``warmup_iterations``, then poly decay
    ``(1 - t / T) ** power`` over the remaining ``T = max_iterations - warmup_iterations``
    iterations; 0 at and after ``max_iterations``.
    """
    if max_iterations <= 0:
        raise ValueError(f'max_iterations must be > 0, got {max_iterations}')
    if iteration < warmup_iterations:
        return warmup_ratio + (1.0 - warmup_ratio) * iteration / warmup_iterations
    span = max(1, max_iterations - warmup_iterations)
    progress = min(1.0, (iteration - warmup_iterations) / span)
    return (1.0 - progress) ** power


def parameter_groups(model: nn.Module, weight_decay: float, head_lr_mult: float
                     ) -> List[Dict[str, object]]:
    """Four SGD groups: {backbone, heads} x {conv weights with decay, everything else without}.

    Weight decay applies to conv (and linear) weights only, never to BatchNorm parameters or
    biases. Each group carries ``lr_mult`` (1 or ``head_lr_mult``) for :func:`apply_lr`.
    """
    groups: Dict[str, List[torch.nn.Parameter]] = {'wd': [], 'nowd': [], 'head_wd': [],
                                                   'head_nowd': []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        top = name.split('.')[1] if name.startswith('module.') else name.split('.')[0]
        decayed = param.dim() > 1  # conv / linear weights; BN weights and biases are 1-D
        key = ('head_' if top in HEAD_PREFIXES else '') + ('wd' if decayed else 'nowd')
        groups[key].append(param)
    out = []
    for key, params in groups.items():
        if params:
            out.append({'params': params, 'name': key,
                        'weight_decay': weight_decay if key.endswith('_wd') or key == 'wd'
                        else 0.0,
                        'lr_mult': head_lr_mult if key.startswith('head') else 1.0})
    return out


def apply_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    """Set every group's lr to ``base_lr * factor * lr_mult``; returns ``base_lr * factor``."""
    lr = base_lr * factor
    for group in optimizer.param_groups:
        group['lr'] = lr * float(group.get('lr_mult', 1.0))
    return lr
