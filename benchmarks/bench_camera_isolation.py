"""Per-camera mask rates of one node serving two small cameras, alone and beside a 4K camera.

    .venv/bin/python benchmarks/bench_camera_isolation.py                   # 2 x 60 s
    .venv/bin/python benchmarks/bench_camera_isolation.py --repo /work/main  # another checkout

Two phases, side by side in one run, one node (torch backend, its own process):

1. ``small only``: two cameras of ``--small`` (480x360) frames at ``--small-rate`` Hz;
2. ``with 4K``: the same two plus one camera of ``--big`` (3840x2160) frames at ``--big-rate``.

For each camera it prints masks/s, the median and the longest gap between masks, and for the
small cameras the ratio of their rate with the 4K camera to their rate without it. The frames
travel over shared memory with a Fast DDS profile made here from config/fastdds_large_images.xml
with a 128 MiB segment (a 4K bgr8 frame is 25 MB).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
SMALL = ('small_a', 'small_b')


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repo', default=str(ROOT), help='checkout whose node runs')
    parser.add_argument('--duration', type=float, default=60.0, help='seconds per phase')
    parser.add_argument('--small', default='360x480', help='HxW of the small cameras')
    parser.add_argument('--big', default='2160x3840', help='HxW of the big camera')
    parser.add_argument('--small-rate', type=float, default=10.0)
    parser.add_argument('--big-rate', type=float, default=2.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--domain', type=int, default=96)
    args = parser.parse_args()
    profile = Path(tempfile.mkdtemp(prefix='bench_iso_')) / 'fastdds.xml'
    profile.write_text((ROOT / 'config' / 'fastdds_large_images.xml').read_text().replace(
        '<segment_size>8388608</segment_size>', f'<segment_size>{128 << 20}</segment_size>'))
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)  # before any participant
    repo = Path(args.repo).resolve()
    sys.path[:0] = [str(repo), str(repo / 'test')]  # the package; the test tooling
    from bisenet_ros.image_conversions import fill_image
    from bisenet_ros.ros.clients.node_process import NodeProcess
    from ros_harness import pattern_image, Probe, \
        write_random_checkpoint
    from sensor_msgs.msg import Image
    import bisenet_ros
    print(f'node from {Path(bisenet_ros.__file__).parent}, {os.cpu_count()} CPUs, '
          f'{args.threads} torch threads')

    model = write_random_checkpoint(profile.parent / 'random.pt')
    sizes = {'big': args.big, **{c: args.small for c in SMALL}}
    rates = {'big': args.big_rate, **{c: args.small_rate for c in SMALL}}
    msgs = {}
    for cam, size in sizes.items():
        h, w = (int(v) for v in size.lower().split('x'))
        msgs[cam] = fill_image(Image(), pattern_image(h, w), 'bgr8')
    node = NodeProcess({'model_path': str(model), 'backend': 'torch', 'threads': args.threads,
                        'image_topics': [f'/{c}/image_raw' for c in sizes]},
                       args.domain, fastdds_profile=str(profile))
    probe = Probe(args.domain, 'bench_isolation')
    try:
        for cam in sizes:
            probe.subscribe(Image, f'/segmentation/{cam}/mask')
            probe.publisher(Image, f'/{cam}/image_raw')
        for cam in sizes:
            if not probe.wait_for_subscribers(f'/{cam}/image_raw', timeout=120):
                print(node.log()[-3000:])
                return 1
        results = {}
        for phase, cams in (('warm-up', SMALL), ('small only', SMALL),
                            ('with 4K', ('big',) + SMALL)):
            duration = 10.0 if phase == 'warm-up' else args.duration
            start = time.monotonic()
            due = {c: start for c in cams}
            while time.monotonic() - start < duration:
                cam = min(due, key=due.get)
                time.sleep(max(0.0, due[cam] - time.monotonic()))
                msg = msgs[cam]
                msg.header.stamp = probe.node.get_clock().now().to_msg()
                probe.publisher(Image, f'/{cam}/image_raw').publish(msg)
                due[cam] += 1.0 / rates[cam]
            end = time.monotonic()
            time.sleep(1.0)  # the last masks of the phase
            results[phase] = {}
            for cam in cams:
                times = [t for t in probe.receive_times[f'/segmentation/{cam}/mask']
                         if start <= t < end]
                g = gaps(times)
                results[phase][cam] = (len(times) / (end - start),
                                       statistics.median(g) if g else float('nan'),
                                       max(g) if g else float('nan'))
            if phase == 'warm-up':
                continue
            print(f'{phase} ({duration:g} s):')
            for cam in cams:
                rate, med, worst = results[phase][cam]
                print(f'  {cam:8s} {sizes[cam]:>9s} sent {rates[cam]:g} Hz: {rate:.2f} masks/s, '
                      f'median gap {1000 * med:.0f} ms, longest gap {1000 * worst:.0f} ms')
        for cam in SMALL:
            alone, beside = results['small only'][cam][0], results['with 4K'][cam][0]
            print(f'{cam}: rate with 4K / rate alone = {beside / alone:.2f}')
    finally:
        probe.close()
        node.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
