"""Does the node keep up with the camera? Masks/s of segmentation_node against the in-process FPS
of the same configuration, side by side in one run.

    .venv/bin/python benchmarks/bench_node_realtime.py                    # node defaults
    .venv/bin/python benchmarks/bench_node_realtime.py --duration 20 --scenarios vga
    .venv/bin/python benchmarks/bench_node_realtime.py --repo /path/other/checkout  # its node

For each scenario (``vga``: one 640x480 camera, ``hd``: one 1280x720 camera, ``two_vga``: two
640x480 cameras), frames are published as bgr8 at ``--rate`` Hz (30) per camera, and mask,
colour mask and overlay are subscribed (raw: this process never deserializes them). Printed:

- ``in-process``: frames/s of ``Segmenter.segment`` on the same frames with the node's
  settings (labels only, this process, node idle), the best of one stream (one frame at a time)
  and the node's inference streams (as many threads calling at once), measured before and
  after each node run (the machine's speed drifts under load: each ratio divides by the mean
  of the two measurements around it);
- ``node``: masks/s received per camera over ``--duration`` s after a warm-up, ``--repeat``
  times;
- ``ratio``: node masks/s / min(rate, in-process FPS / cameras), the median over the repeats
  (each run's in brackets): the issue's goal is >= 0.95;
- the node's own per-stage times (ms per frame, from ``/diagnostics``) and ``input_age``, the
  mean age of a frame when its outputs went out (node clock minus header stamp: latency);
- the CPU this process used meanwhile (publishing the camera, receiving the outputs), which
  the node shares the machine with and the in-process figure does not; the machine's idle CPU
  over the same seconds (all processes); the time between one camera's masks (median and
  10-90 %: how evenly they come).

The node runs with its defaults (``precision: auto`` picks the configuration) plus
``--param name=value`` overrides. Both processes load the Fast DDS large-image profile
(``config/fastdds_large_images.xml``). Name the CPU beside any figure you quote.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {'vga': [(480, 640)], 'hd': [(720, 1280)], 'two_vga': [(480, 640), (480, 640)]}
OUTPUTS = ('mask', 'color_mask', 'overlay')


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def idle_cpus() -> Optional[float]:
    """CPU-seconds the whole machine spent idle since boot (Linux ``/proc/stat``), or None."""
    try:
        with open('/proc/stat') as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    return (int(fields[4]) + int(fields[5])) / os.sysconf('SC_CLK_TCK')  # idle + iowait


def in_process_fps(params: Dict[str, Any], size, frames: int) -> Dict[str, Any]:
    """Frames/s of Segmenter.segment (labels only) with the node's model settings: the best of
    one stream and the node's streams (frames over wall time, as many threads calling at once);
    ``by_streams`` has each."""
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.ros.params import NodeParams
    from bench_streams_contention import throughput  # beside this script
    from ros_harness import pattern_image
    p = NodeParams.from_values(params)
    images = [pattern_image(size[0], size[1], seed=i) for i in range(4)]
    by_streams: Dict[int, float] = {}
    result: Dict[str, Any] = {}
    for streams in dict.fromkeys([1, p.inference_streams or 'auto']):
        seg = Segmenter(p.model_path, backend=p.backend, device=p.device,
                        precision=p.precision, input_size=p.model_input_size,
                        threads=p.threads or None, label_set=p.label_set or None,
                        streams=streams)
        try:
            if seg.streams in by_streams:
                continue
            for image in images:
                seg.segment(image)
            by_streams[seg.streams] = throughput(seg, images, frames)
            chosen = getattr(seg, 'choice', None)
            result.update(backend=seg.backend_name,
                          choice=str(chosen) if chosen is not None else '')
        finally:
            seg.close()
    return dict(result, fps=max(by_streams.values()), by_streams=by_streams)


def run_scenario(name: str, sizes, args, params: Dict[str, Any], domain: int,
                 profile: Path) -> Dict[str, Any]:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from diagnostic_msgs.msg import DiagnosticArray
    from bisenet_ros.image_conversions import fill_image
    from bisenet_ros.ros.clients.node_process import NodeProcess
    from ros_harness import pattern_image

    topics = [f'/cam{i}/image_raw' for i in range(len(sizes))]
    node_params = dict(params, image_topics=topics)
    proc = NodeProcess(node_params, domain, fastdds_profile=str(profile))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    bench = rclpy.create_node(f'bench_realtime_{name}', context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(bench)
    received: Dict[str, List[float]] = {}
    stages: Dict[str, List[Dict[str, str]]] = {}
    prefixes = ['/segmentation'] if len(sizes) == 1 else \
        [f'/segmentation/cam{i}' for i in range(len(sizes))]
    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    for prefix in prefixes:
        for output in OUTPUTS:
            topic = f'{prefix}/{output}'
            received[topic] = []
            bench.create_subscription(Image, topic,
                                      lambda raw, t=topic: received[t].append(time.monotonic()),
                                      qos, raw=True)

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith('segmentation_node: /cam'):
                stages.setdefault(status.name.split(': ', 1)[1], []).append(
                    {kv.key: kv.value for kv in status.values})
    bench.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    pubs = [bench.create_publisher(Image, t, qos_profile_sensor_data) for t in topics]
    msgs = [fill_image(Image(), pattern_image(h, w, seed=i), 'bgr8')
            for i, (h, w) in enumerate(sizes)]
    try:
        deadline = time.monotonic() + 300
        mask_topics = [f'{p}/mask' for p in prefixes]
        period = 1.0 / args.rate

        receiver = threading.Thread(target=executor.spin, daemon=True)  # outputs, diagnostics
        receiver.start()

        def stream(seconds: float) -> None:
            """Publish every camera at ``--rate``, paced by sleeping (as a driver would)."""
            start = time.monotonic()
            due = start
            while time.monotonic() - start < seconds:
                time.sleep(max(0.0, due - time.monotonic()))
                for pub, msg in zip(pubs, msgs):
                    msg.header.stamp = bench.get_clock().now().to_msg()
                    pub.publish(msg)
                due += period
        # Warm-up: until every camera's masks flow, then a few seconds more.
        while not all(received[t] for t in mask_topics):
            if time.monotonic() > deadline or not proc.alive():
                raise RuntimeError(f'no masks from the node:\n{proc.log()[-3000:]}')
            stream(1.0)
        stream(args.warmup)
        for values in received.values():
            values.clear()
        stages.clear()
        start, cpu_start, idle_start = time.monotonic(), time.process_time(), idle_cpus()
        stream(args.duration)
        end, cpu_end, idle_end = time.monotonic(), time.process_time(), idle_cpus()
        rates = {t: sum(start <= x < end for x in received[t]) / (end - start)
                 for t in received}
        per_stage = {}
        for camera, reports in stages.items():
            keys = [k for k in reports[-1] if k.endswith('_ms')
                    and k not in ('input_age_max_ms', 'input_age_min_ms')]
            per_stage[camera] = {k[:-3]: statistics.median(float(r[k]) for r in reports
                                                           if r.get(k))
                                 for k in keys if any(r.get(k) for r in reports)}
        superseded = {}
        for camera, reports in stages.items():
            if len(reports) >= 2:
                done = {k: int(reports[-1][k]) - int(reports[0][k])
                        for k in ('frames_superseded', 'frames_published')}
                superseded[camera] = done['frames_superseded'] / max(
                    1, done['frames_superseded'] + done['frames_published'])
        gaps = [b - a for t in mask_topics for a, b in zip(received[t], received[t][1:])
                if start <= a and b < end]
        return {'rates': rates, 'stages': per_stage, 'masks': mask_topics,
                'camera_cpu': (cpu_end - cpu_start) / (end - start),
                'idle': None if idle_start is None else (idle_end - idle_start) / (end - start),
                'gaps': gaps, 'superseded': superseded}
    finally:
        executor.shutdown()
        bench.destroy_node()
        rclpy.shutdown(context=context)
        proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repo', default=str(ROOT), help='checkout whose node runs')
    parser.add_argument('--scenarios', default='vga,hd,two_vga',
                        help=f'comma-separated, of {sorted(SCENARIOS)}')
    parser.add_argument('--rate', type=float, default=30.0, help='camera rate (Hz)')
    parser.add_argument('--duration', type=float, default=30.0, help='measured seconds')
    parser.add_argument('--warmup', type=float, default=5.0, help='seconds before measuring')
    parser.add_argument('--frames', type=int, default=30, help='in-process frames timed')
    parser.add_argument('--repeat', type=int, default=1, help='node runs per scenario')
    parser.add_argument('--param', action='append', default=[], metavar='NAME=VALUE',
                        help='node parameter override (JSON value), repeatable')
    parser.add_argument('--domain', type=int, default=95)
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    profile = repo / 'config' / 'fastdds_large_images.xml'
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)  # before any participant
    os.environ['PYTHONPATH'] = os.pathsep.join(
        [str(repo)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
    sys.path[:0] = [str(repo), str(ROOT / 'test')]  # that checkout's package; test tooling
    tmp = tempfile.mkdtemp(prefix='bench_realtime_')
    os.environ.setdefault('ROS_LOG_DIR', tmp)
    params = {k: parse_value(v) for k, v in (item.split('=', 1) for item in args.param)}
    import bisenet_ros
    git = subprocess.run(['git', '-C', str(repo), 'log', '-1', '--format=%h'],
                         capture_output=True, text=True).stdout.strip()
    with open('/proc/cpuinfo') as info:  # not bisenet_ros.cpu_features: --repo may lack it
        cpu = next((line.split(':', 1)[1].strip() for line in info
                    if line.startswith('model name')), 'unknown CPU')
    print(f'CPU: {cpu}, {os.cpu_count()} CPUs; node from '
          f'{Path(bisenet_ros.__file__).parent} ({git}); params {params or "defaults"}; '
          f'{args.rate:g} Hz bgr8, outputs {", ".join(OUTPUTS)} subscribed')
    for name in args.scenarios.split(','):
        sizes = SCENARIOS[name]
        inproc = [in_process_fps(params, sizes[0], args.frames)]
        runs = []
        for _ in range(max(1, args.repeat)):
            result = run_scenario(name, sizes, args, params, args.domain, profile)
            inproc.append(in_process_fps(params, sizes[0], args.frames))
            around = (inproc[-2]['fps'] + inproc[-1]['fps']) / 2
            per_camera = [result['rates'][t] for t in result['masks']]
            target = min(args.rate, around / len(sizes))
            runs.append((min(per_camera) / target, per_camera, target, result))
        ratio, per_camera, target, result = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
        size = '+'.join(f'{w}x{h}' for h, w in sizes)
        fps = statistics.median(i['fps'] for i in inproc)
        each = ' '.join(f'{i["fps"]:.1f}' for i in inproc)
        streams = ', '.join(
            f'{k} stream(s) {statistics.median(i["by_streams"][k] for i in inproc):.1f}'
            for k in inproc[0]['by_streams'])
        print(f'{name:8s} {size:>15s}: in-process {fps:.1f} FPS ({inproc[0]["backend"]}; '
              f'{streams}; best each time {each}), node '
              f'{" / ".join(f"{r:.1f}" for r in per_camera)} masks/s per camera, target '
              f'{target:.1f}, ratio {ratio:.2f} (runs: '
              f'{" ".join(format(r[0], ".2f") for r in runs)})')
        for camera, stage in result['stages'].items():
            print(f'         {camera}: ' + ', '.join(f'{k} {v:.1f} ms' for k, v in stage.items()))
            if camera in result['superseded']:
                print(f'         {camera}: {100 * result["superseded"][camera]:.0f} % of the '
                      'frames inferred were superseded (a newer frame went out first)')
        gaps = sorted(result['gaps'])
        if len(gaps) >= 10:
            median, low, high = (1e3 * gaps[len(gaps) * k // 10] for k in (5, 1, 9))
            print(f'         time between masks of a camera: median {median:.0f} ms, '
                  f'10-90 % {low:.0f}-{high:.0f} ms')
        idle = '' if result['idle'] is None else \
            f'; the machine idle: {100 * result["idle"]:.0f} % of one CPU'
        print(f'         this process (camera publisher and output subscriber): '
              f'{100 * result["camera_cpu"]:.0f} % of one CPU{idle}')
        if inproc[0]['choice']:
            print(f'         precision auto: {inproc[0]["choice"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
