"""Memory, temp files and first-frame cost as the input size keeps changing, per strategy.

    .venv/bin/python benchmarks/bench_sizes.py                 # 12 sizes, about 2 minutes
    .venv/bin/python benchmarks/bench_sizes.py --sizes 6       # quick

A camera that changes resolution, or several cameras of different sizes, feed one Segmenter
(onnxruntime, the packaged model, ``--threads``). Each strategy runs in a fresh child process,
on the same sizes in the same order, one after the other in one run:

* ``per-size LRU``: a graph exported per input size, at most ``MAX_CACHED_SIZES`` kept
  (``dynamic_size=False``; before issue 12 the same without a bound);
* ``dynamic H/W``: one graph with dynamic H and W, inputs padded to multiples of 32 (default);
* ``fixed size``: every image resized to one network size (``input_size``): one graph, but the
  masks are computed at another resolution than the image's.

Printed per strategy: resident memory after warm-up and after the last size, files in its temp
folder, and the medians of the first frame of a new size and of the next frame at that size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

STRATEGIES = {'per-size LRU': {'dynamic_size': False}, 'dynamic H/W': {},
              'fixed size': {'input_size': (384, 480)}}


def resident_mb() -> float:
    with open('/proc/self/status') as status:
        return int(next(line.split()[1] for line in status if line.startswith('VmRSS:'))) / 1024


def child(options: dict, sizes: list, threads: int) -> dict:
    """One strategy in this process; returns its figures."""
    import numpy as np

    from bisenet_ros.inference import Segmenter
    from bisenet_ros.resources import default_model_path
    folder = Path(tempfile.mkdtemp(prefix='bench_sizes_'))
    tempfile.tempdir = str(folder)
    rng = np.random.default_rng(0)
    with Segmenter(default_model_path(), backend='onnxruntime', threads=threads,
                   **options) as seg:
        seg.segment(rng.integers(0, 255, (64, 64, 3), np.uint8))
        start = resident_mb()
        first, again, files = [], [], []
        for h, w in sizes:
            image = rng.integers(0, 255, (h, w, 3), np.uint8)
            t0 = time.perf_counter()
            seg.segment(image)
            t1 = time.perf_counter()
            seg.segment(image)
            t2 = time.perf_counter()
            first.append(t1 - t0)
            again.append(t2 - t1)
            files.append(sum(1 for p in folder.rglob('*') if p.is_file()))
        end = resident_mb()
    return {'rss_start': start, 'rss_end': end, 'files_max': max(files),
            'first_ms': 1000 * statistics.median(first),
            'again_ms': 1000 * statistics.median(again)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, default=12, help='distinct input sizes (12)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [(224 + 16 * i, 320 + 16 * ((5 * i) % 9)) for i in range(args.sizes)]
    if args.child:
        print(json.dumps(child(json.loads(args.child), sizes, args.threads)))
        return
    print(f'{len(sizes)} sizes from {sizes[0][0]}x{sizes[0][1]} to '
          f'{max(h for h, _ in sizes)}x{max(w for _, w in sizes)}, onnxruntime, '
          f'{args.threads} threads')
    print(f'{"strategy":<14} {"RSS start MB":>12} {"RSS end MB":>11} {"tmp files":>9} '
          f'{"new size ms":>11} {"same size ms":>12} {"new/same":>8}')
    for name, options in STRATEGIES.items():
        out = subprocess.run([sys.executable, __file__, '--sizes', str(args.sizes),
                              '--threads', str(args.threads), '--child',
                              json.dumps(options)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f'{name:<14} {r["rss_start"]:>12.0f} {r["rss_end"]:>11.0f} {r["files_max"]:>9} '
              f'{r["first_ms"]:>11.0f} {r["again_ms"]:>12.0f} '
              f'{r["first_ms"] / r["again_ms"]:>8.2f}')


if __name__ == '__main__':
    main()
