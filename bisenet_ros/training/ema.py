"""Exponential moving average (EMA) of a model's weights, for ``train.ema_decay``.

After every optimisation step each floating-point tensor of the model's ``state_dict``
(parameters and BatchNorm running statistics) is blended into its average::

    ema = rate * ema + (1 - rate) * weight,   rate = min(decay, (1 + n) / (10 + n))

with ``n`` the number of updates before this one, so the first updates follow the weights
closely (a from-scratch run's first weights are noise) and the average spans at most about
``1 / (1 - decay)`` steps later on. Integer tensors (BatchNorm's ``num_batches_tracked``) are
copied. ``n`` is part of the state, so a resumed run continues the same average.
"""

from __future__ import annotations

import copy
from typing import Any, Dict

import torch


class WeightEma:
    """The averaged copy of a model (``self.model``, eval mode, no gradients).

    Args:
        model: The trained model (plain, not DDP-wrapped); copied, not modified.
        decay: Largest rate, in (0, 1), e.g. 0.999.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ValueError(f'EMA decay must be in (0, 1), got {decay!r}')
        self.decay, self.updates = float(decay), 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def rate(self) -> float:
        """The rate of the next update (see the module docstring)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Blend ``model``'s current tensors into the average (after an optimiser step)."""
        rate = self.rate()
        current = model.state_dict()
        for name, average in self.model.state_dict().items():
            value = current[name].detach()
            if average.dtype.is_floating_point:
                average.lerp_(value.to(average.dtype), 1.0 - rate)
            else:
                average.copy_(value)
        self.updates += 1

    def state_dict(self) -> Dict[str, Any]:
        """``{'model': averaged tensors (CPU), 'updates': n, 'decay': decay}``."""
        return {'model': {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                'updates': self.updates, 'decay': self.decay}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (the decay of this run's config is kept)."""
        self.model.load_state_dict(state['model'])
        self.updates = int(state['updates'])
