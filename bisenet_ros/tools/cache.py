"""``bisenet cache``: what the per-user artifact cache holds, and removing what is not used.

The cache (``$BISENET_CACHE_DIR``, else ``$XDG_CACHE_HOME/bisenet_ros``, else
``~/.cache/bisenet_ros``) keeps ONNX exports, int8 graphs, OpenVINO compiled models, TensorRT
engines and ``precision: auto`` verdicts across runs. Entries are never deleted on their own: a
new model or runtime version adds entries, and old ones stay until removed here. A removed entry
is rebuilt when next needed (seconds for an export, minutes for a TensorRT engine on a Jetson).

Examples::

    bisenet cache                    # the folder, and each kind's entries, size and oldest use
    bisenet cache --list             # every entry: kind, size, last use, file
    bisenet cache --older-than 30    # remove entries not used for 30 days
    bisenet cache --clear --dry-run  # what removing everything would free
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

from ..export.cache import cache_entries, cache_root, CacheEntry, remove_entries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bisenet cache``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('--list', action='store_true', help='every entry, oldest use first')
    remove = parser.add_mutually_exclusive_group()
    remove.add_argument('--older-than', type=float, metavar='DAYS',
                        help='remove the entries not used for DAYS days')
    remove.add_argument('--clear', action='store_true', help='remove every entry')
    parser.add_argument('--dry-run', action='store_true',
                        help='say what would be removed, remove nothing')


def run(args: argparse.Namespace) -> int:
    """List or prune the cache; returns 0."""
    if args.older_than is not None and not args.older_than >= 0:
        raise ValueError(f'--older-than: expected days >= 0, got {args.older_than}')
    root = cache_root()
    entries = cache_entries(root)
    print(f'cache: {root}' + ('' if root.is_dir() else ' (does not exist yet)'))
    if args.list:
        for entry in entries:
            print(f'  {entry.kind:9s} {_size(entry.size):>9s}  used {_when(entry.last_used)}  '
                  f'{entry.files[0].name}')
    if args.clear or args.older_than is not None:
        cutoff = time.time() - 86400.0 * (args.older_than or 0.0)
        chosen = entries if args.clear else [e for e in entries if e.last_used < cutoff]
        what = 'every entry' if args.clear else f'entries unused for {args.older_than:g} days'
        if args.dry_run:
            print(f'would remove {len(chosen)} {what}: {_size(sum(e.size for e in chosen))}')
        else:
            removed, freed = remove_entries(chosen)
            print(f'removed {removed} of {len(chosen)} {what}: {_size(freed)} freed')
        entries = cache_entries(root) if not args.dry_run else entries
    _summary(entries)
    return 0


def _summary(entries: List[CacheEntry]) -> None:
    kinds: Dict[str, List[CacheEntry]] = {}
    for entry in entries:
        kinds.setdefault(entry.kind, []).append(entry)
    for kind, group in sorted(kinds.items()):
        print(f'  {kind:9s} {len(group):4d} entries {_size(sum(e.size for e in group)):>9s}, '
              f'oldest use {_when(min(e.last_used for e in group))}')
    print(f'  total     {len(entries):4d} entries {_size(sum(e.size for e in entries)):>9s}')


def _size(count: int) -> str:
    return f'{count / 2**20:.1f} MiB'


def _when(seconds: float) -> str:
    return time.strftime('%Y-%m-%d %H:%M', time.localtime(seconds))
