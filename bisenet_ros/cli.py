"""The ``bisenet`` command-line tool: one entry point, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their subcommand runs, so ``bisenet --help`` stays fast and a missing optional
dependency only affects the subcommand that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Dict, List, Optional, Tuple

#: name -> (module, one-line help). Keep alphabetical.
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    'bag-to-dataset': ('bisenet_ros.tools.bag_to_dataset', "a robot's bag -> a dataset folder "
                       'for bisenet train (frames by stride or scene change, optional teacher '
                       'labels)'),
    'benchmark': ('bisenet_ros.tools.benchmark', 'latency, FPS, GFLOP/s and agreement of each '
                  'backend and precision, side by side'),
    'cache': ('bisenet_ros.tools.cache', 'what the per-user artifact cache (exports, int8 '
              'graphs, engines) holds; remove entries unused for days, or all'),
    'calibrate': ('bisenet_ros.tools.calibrate', 'fit per-class logit offsets on a training '
                  'split and fold them into a copy of a checkpoint'),
    'demo': ('bisenet_ros.tools.demo', 'segment real street scenes with the default model, '
             'through the ROS node, and report (no arguments needed)'),
    'eval-bag': ('bisenet_ros.tools.eval_bag', 'evaluate models (or the running node, --live) '
                 'on a ROS bag: mIoU, latency, agreement'),
    'evaluate': ('bisenet_ros.tools.evaluate', 'mIoU and per-class IoU of a checkpoint on a '
                 'dataset split, single scale or multi-scale + flip'),
    'export': ('bisenet_ros.tools.export', 'export ONNX (and a TensorRT engine), verified '
               'against PyTorch'),
    'export-checkpoint': ('bisenet_ros.tools.export_checkpoint', 'convert a training state '
                          '(last.pt/best.pt) into a project checkpoint'),
    'make-bag': ('bisenet_ros.tools.make_bag', 'write a ROS 2 bag of images + ground-truth '
                 'labels from a dataset'),
    'segment': ('bisenet_ros.tools.segment_image', 'segment image files: label, colour and '
                'overlay PNGs'),
    'train': ('bisenet_ros.tools.train', 'train BiSeNet V2 from a YAML config'),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """Top-level parser; only ``command``'s module is imported, to add its arguments."""
    parser = argparse.ArgumentParser(prog='bisenet', description=__doc__.splitlines()[0])
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='debug logging, and the traceback of an error')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module_name, help_text) in sorted(SUBCOMMANDS.items()):
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub_parser)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``bisenet COMMAND ...``; returns the process exit code.

    A user error (missing or unreadable file, output path that is a file, bad value, input
    over a bound, missing optional module, runtime failure) is logged in one line and returns 1;
    with ``-v`` its traceback is logged too. Ctrl-C returns 130 without a traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith('-')), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    if not getattr(args, '_module', None):
        parser.print_help()
        return 2
    log = logging.getLogger('bisenet')
    try:
        module = importlib.import_module(args._module)
        return int(module.run(args) or 0)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        if args.verbose:
            log.exception('%s', exc)
        else:
            log.error('%s (run with -v for the traceback)', exc)
        return 1
    except KeyboardInterrupt:
        log.error('interrupted')
        return 130


if __name__ == '__main__':
    sys.exit(main())
