"""``bisenet train``: train BiSeNet V2 from a YAML config (``config/train/*.yaml``).

Single process: ``bisenet train --config config/train/camvid.yaml``. Several processes (DDP):
``torchrun --nproc_per_node=N -m bisenet_ros.tools.train --config ...``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, Dict, List, Optional, Tuple


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', help='training YAML (see config/train/); defaults otherwise')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config value, e.g. train.lr=0.01 '
                        '(repeatable; VALUE is parsed as YAML)')
    parser.add_argument('-o', '--output', '--output-dir', dest='output_dir',
                        help='run folder (= --set output_dir=...)')
    parser.add_argument('--data-root', help='dataset root (= --set dataset.root=...)')
    parser.add_argument('--iterations', type=int, help='= --set train.iterations=...')
    parser.add_argument('--batch-size', type=int, help='global batch (= train.batch_size)')
    parser.add_argument('--lr', type=float, help='base learning rate (= train.lr)')
    parser.add_argument('--device', choices=('auto', 'cpu', 'cuda'), help='= train.device')
    parser.add_argument('--max-time-min', type=float,
                        help='stop cleanly after this many minutes (= train.max_time_min)')
    parser.add_argument('--pause-after-min', type=float, metavar='MINUTES',
                        help='leave after this many minutes of training with only last.pt '
                        'written, as an interrupted run would (no extra validation, no '
                        'final.pt): the run resumes elsewhere exactly')
    parser.add_argument('--pause-after-iterations', type=int, metavar='N',
                        help='the same after N iterations of this process')
    parser.add_argument('--resume', nargs='?', const='auto', metavar='STATE',
                        help='resume from a training state (last.pt); without a value, from '
                        '<output_dir>/last.pt')
    parser.add_argument('--warm-start', metavar='CHECKPOINT',
                        help='continue a run from its packaged model (project checkpoint) at '
                        'the iteration it records, when the training state is gone')
    parser.add_argument('--continue-from', metavar='CHECKPOINT',
                        help='resume from <output_dir>/last.pt when present, else warm-start '
                        'from CHECKPOINT when this run wrote it, else start from scratch')


def overrides_from(args: argparse.Namespace) -> List[str]:
    """Explicit flags -> ``key=value`` overrides, applied after ``--set``."""
    out = list(args.overrides)
    flags = {'output_dir': 'output_dir', 'data_root': 'dataset.root',
             'iterations': 'train.iterations', 'batch_size': 'train.batch_size',
             'lr': 'train.lr', 'device': 'train.device', 'max_time_min': 'train.max_time_min'}
    for attr, key in flags.items():
        value = getattr(args, attr, None)
        if value is not None:
            out.append(f'{key}={value}')
    return out


def continue_point(config: Dict[str, Any], checkpoint: str
                   ) -> Tuple[Optional[str], Optional[str]]:
    """``(resume, warm_start)`` for ``--continue-from CHECKPOINT``: ``<output_dir>/last.pt``
    when present, else ``CHECKPOINT`` when this run wrote it, else neither (from scratch)."""
    from pathlib import Path

    from ..training.checkpoint_export import made_by_run
    last = Path(config['output_dir']) / 'last.pt'
    if last.is_file():
        return str(last), None
    if made_by_run(checkpoint, config):
        return None, checkpoint
    return None, None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..training.config import load_config
    from ..training.trainer import Trainer

    config = load_config(args.config, overrides_from(args))
    resume, warm_start = args.resume, args.warm_start
    if resume == 'auto':
        resume = str(Path(config['output_dir']) / 'last.pt')
    if args.continue_from and not (resume or warm_start):
        resume, warm_start = continue_point(config, args.continue_from)
    program = ['python', '-m', 'bisenet_ros.tools.train'] \
        if sys.argv[0].endswith('train.py') else ['bisenet']
    command = ' '.join(shlex.quote(a) for a in program + sys.argv[1:])
    for flag in ('pause_after_min', 'pause_after_iterations'):
        value = getattr(args, flag, None)
        if value is not None and value <= 0:
            raise SystemExit(f'bisenet train: --{flag.replace("_", "-")} must be > 0, got '
                             f'{value}')
    trainer = Trainer(config, resume=resume, warm_start=warm_start, command=command)
    stop_after = None if args.pause_after_iterations is None \
        else trainer.iteration + args.pause_after_iterations
    trainer.fit(stop_after=stop_after, pause_after_min=args.pause_after_min)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point for ``python -m bisenet_ros.tools.train`` (e.g. under torchrun)."""
    import logging
    parser = argparse.ArgumentParser(prog='bisenet train', description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: '
                        '%(message)s')
    return run(args)


if __name__ == '__main__':
    sys.exit(main())
