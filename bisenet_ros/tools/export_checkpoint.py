"""``bisenet export-checkpoint``: training state (last.pt/best.pt) -> project checkpoint."""

from __future__ import annotations

import argparse
import json
from typing import List, Optional


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('state', help='training state written by bisenet train')
    parser.add_argument('output', help='project checkpoint to write (.pt)')
    parser.add_argument('--meta', action='append', default=[], metavar='KEY=VALUE',
                        help='extra metadata (VALUE parsed as JSON when possible; repeatable)')


def run(args: argparse.Namespace) -> int:
    import os

    from ..training.checkpoint_export import export_train_state
    extra = {}
    for item in args.meta:
        if '=' not in item:
            raise ValueError(f"--meta '{item}' must look like key=value")
        key, value = item.split('=', 1)
        try:
            extra[key] = json.loads(value)
        except json.JSONDecodeError:
            extra[key] = value
    path = export_train_state(args.state, args.output, extra=extra)
    print(f'wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='bisenet export-checkpoint')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    import sys
    sys.exit(main())
