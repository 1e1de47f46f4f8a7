#!/usr/bin/env python3
"""Benchmark every inference backend side by side (wrapper around ``bisenet benchmark``).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_backends.py --model path/to/model.pt -n 5 \\
        --json benchmarks/bench_backends.json

All options of ``bisenet benchmark --help`` apply. Speed goals are printed as measured ratios;
nothing here asserts timings.
"""

import argparse
import logging
import sys


def main(argv=None) -> int:
    from bisenet_ros.tools import benchmark
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchmark.add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    return benchmark.run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
