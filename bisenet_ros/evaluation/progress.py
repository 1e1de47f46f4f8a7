"""Progress bars for long runs (tqdm on a terminal; silent when output is not a terminal)."""

from __future__ import annotations

import sys
from typing import Any, Optional


class _NoBar:
    """Stand-in with tqdm's interface when no bar should be shown."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> '_NoBar':
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(total: Optional[int], desc: str, enabled: Optional[bool] = None) -> Any:
    """A tqdm bar on stderr; ``enabled=None`` shows it only when stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit='frame', leave=False, dynamic_ncols=True)
