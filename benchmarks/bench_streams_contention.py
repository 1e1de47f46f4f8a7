"""One inference stream or several, alone and beside other work on the same cores.

    .venv/bin/python benchmarks/bench_streams_contention.py
    .venv/bin/python benchmarks/bench_streams_contention.py --size 720x1280 --load 0.25 --rounds 3

A node never has the CPU to itself: the camera driver, DDS, the node's own decoding and
publishing run beside inference. This prints the throughput (frames/s) of the packaged model
with ``precision: auto`` at one size for ``--streams`` (default ``1,auto``), alone and beside a
competing process that busies ``--load`` of one CPU in short bursts (every 8 ms), alternated
over ``--rounds`` (the machine's speed drifts). One stream runs frames one at a time on all
threads, and its threads wait for one another at every layer, so a thread that another process
delays holds all of them up; N streams run N frames at once, one per thread group.

Printed per configuration: the median FPS alone and loaded, and ``kept`` = loaded / alone. The
competing load takes ``load / CPUs`` of the machine: a configuration that lost no more than that
would keep ``1 - load / CPUs``. Name the CPU beside any figure you quote.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
BURN = '''
import sys, time
duty, period = float(sys.argv[1]), 0.008
while True:
    start = time.monotonic()
    while time.monotonic() - start < duty * period:
        pass
    time.sleep(period * (1 - duty))
'''


def throughput(seg: Any, images: List[Any], frames: int) -> float:
    """Frames/s of ``seg.streams`` threads segmenting ``frames`` frames in all."""
    share = max(1, frames // seg.streams)

    def work(offset: int) -> None:
        for i in range(share):
            seg.segment(images[(offset + i) % len(images)])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(seg.streams)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return share * seg.streams / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', default='480x640', help='HxW of the frames')
    parser.add_argument('--streams', default='1,auto', help="comma-separated: integers, 'auto'")
    parser.add_argument('--load', type=float, default=0.25,
                        help='share of one CPU the competing process busies')
    parser.add_argument('--frames', type=int, default=16, help='frames per measurement')
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / 'test')]
    from bisenet_ros.cpu_features import cpu_features
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.resources import default_model_path
    from ros_harness import pattern_image
    height, width = (int(v) for v in args.size.split('x'))
    images = [pattern_image(height, width, seed=i) for i in range(4)]
    segmenters = {}
    for value in args.streams.split(','):
        streams = value if value == 'auto' else int(value)
        seg = Segmenter(str(default_model_path()), streams=streams)
        if any(s.streams == seg.streams for s in segmenters.values()):
            seg.close()
            continue
        for image in images:
            seg.segment(image)
        segmenters[f'{seg.streams} stream(s)'] = seg
    first = next(iter(segmenters.values()))
    with open('/proc/cpuinfo') as info:
        model = next((line.split(':', 1)[1].strip() for line in info
                      if line.startswith('model name')), 'unknown CPU')
    print(f'CPU: {model} ({cpu_features().describe()}), {os.cpu_count()} CPUs; '
          f'{first.choice.summary()}; '
          f'{width}x{height}; competing load {args.load:g} of one CPU')
    fps: Dict[str, Dict[str, List[float]]] = {n: {'alone': [], 'loaded': []}
                                              for n in segmenters}
    for _ in range(args.rounds):
        for loaded in (False, True):
            burn = subprocess.Popen([sys.executable, '-c', BURN, str(args.load)]) \
                if loaded else None
            try:
                time.sleep(0.3)
                for name, seg in segmenters.items():
                    fps[name]['loaded' if loaded else 'alone'].append(
                        throughput(seg, images, args.frames))
            finally:
                if burn is not None:
                    burn.kill()
                    burn.wait()
    for name, seg in segmenters.items():
        alone = statistics.median(fps[name]['alone'])
        loaded = statistics.median(fps[name]['loaded'])
        print(f'{name:12s}: alone {alone:.2f} FPS, loaded {loaded:.2f} FPS, kept '
              f'{loaded / alone:.2f} (no-loss bound {1 - args.load / os.cpu_count():.2f})')
        seg.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
