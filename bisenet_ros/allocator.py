"""glibc's allocator tuned for a process that receives camera frames (pure process code).

Each frame a subscription takes is a new buffer of about a megabyte (640x480 bgr8: 0.9 MB).
glibc serves blocks that large with ``mmap`` and gives them back with ``munmap`` when freed, or
trims them off the top of the heap, so every frame faults its pages in again and the kernel
zeroes them: taking a 30 Hz VGA camera cost 13.7 % of a core that way, 5.2 % with large blocks
kept in the heap (2-core AMD EPYC, one run each, ``docs/node.md``). :func:`keep_large_buffers`
raises both thresholds so freed frame buffers are reused.

The environment wins: a user's ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is left
as set. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os

LOG = logging.getLogger(__name__)

#: Blocks up to this size come from the heap, not from their own ``mmap`` (glibc's largest
#: automatic value on 64-bit hosts; a 4K bgr8 frame is 24.9 MB).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the top of the heap kept for reuse before it is given back to the OS.
TRIM_THRESHOLD = 128 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
ENVIRONMENT = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_')


def keep_large_buffers() -> bool:
    """Keep freed blocks up to :data:`MMAP_THRESHOLD` in the heap (up to
    :data:`TRIM_THRESHOLD` of them) instead of unmapping them; call once at process start.

    Returns whether the allocator was changed (False: not glibc, or set by the environment).
    """
    if any(name in os.environ for name in ENVIRONMENT):
        LOG.debug('allocator: %s set in the environment, left as is', ' / '.join(ENVIRONMENT))
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    changed = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and \
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    LOG.debug('allocator: large blocks kept in the heap: %s', changed)
    return changed
