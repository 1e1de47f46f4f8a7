"""Process-wide thread settings, applied once by a process entry point (the CLI, the node).

ONNX Runtime and OpenVINO take a thread count per session/compiled model, so backends pass
``threads`` there. torch has one intra-op pool per process: a backend instance must not change
it (two Segmenters in one process would silently change each other), so entry points call
:func:`set_torch_threads` instead.
"""

from __future__ import annotations

import logging
from typing import Optional

LOG = logging.getLogger(__name__)


def set_torch_threads(threads: Optional[int]) -> None:
    """Set torch's intra-op thread count for this process (``None``/0: leave torch's default).

    Call it from a process entry point only. A no-op when torch is not installed. More threads
    than the CPUs this process may use is a :class:`~bisenet_ros.limits.LimitError`.
    """
    from ..limits import LimitError, threads_problem
    problem = threads_problem(threads)
    if problem:
        raise LimitError(problem)
    if not threads:
        return
    from .backends.base import module_available
    if not module_available('torch'):
        return
    import torch
    if torch.get_num_threads() != int(threads):
        torch.set_num_threads(int(threads))
        LOG.debug('torch threads for this process: %d', int(threads))
