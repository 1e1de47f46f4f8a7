"""Big camera frames between two processes: frames sent vs arrived, per Fast DDS profile.

    .venv/bin/python benchmarks/bench_big_frames.py                  # 40 frames per size, ~1 min
    .venv/bin/python benchmarks/bench_big_frames.py --frames 20

A publisher sends ``--frames`` bgr8 Images of each size at ``--rate`` Hz with SensorData QoS
(best effort, what the node subscribes with) to a subscriber in another process; both load the
same profile (``FASTDDS_DEFAULT_PROFILES_FILE``). Profiles, side by side in one run: the shipped
``config/fastdds_large_images.xml`` and the same file with the 8 MiB segment it had before
issue 12. Printed: arrived/sent per size and profile.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import subprocess
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / 'config' / 'fastdds_large_images.xml'
TOPIC = '/bench/big_image'


def listen(idle: float) -> None:
    """Child: count the Images that arrive, by size; print JSON once ``idle`` s pass quietly."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('big_frame_listener')
    counts: dict = {}
    last = [time.monotonic()]

    def on_image(msg: Image) -> None:
        if len(msg.data) == msg.step * msg.height:
            key = f'{msg.width}x{msg.height}'
            counts[key] = counts.get(key, 0) + 1
        last[0] = time.monotonic()
    node.create_subscription(Image, TOPIC, on_image, qos_profile_sensor_data)
    print('ready', flush=True)
    while time.monotonic() - last[0] < idle or not counts:
        rclpy.spin_once(node, timeout_sec=0.1)
        if time.monotonic() - last[0] > 120:
            break
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def send(sizes: list, frames: int, rate: float) -> dict:
    """Parent: publish the frames once the listener is matched; returns sent per size."""
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('big_frame_sender')
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    sent = {}
    for width, height in sizes:
        msg = Image(height=height, width=width, encoding='bgr8', step=width * 3)
        msg.data = np.random.default_rng(0).integers(0, 255, height * width * 3,
                                                     np.uint8).tobytes()
        for _ in range(frames):
            pub.publish(msg)
            time.sleep(1.0 / rate)
        sent[f'{width}x{height}'] = frames
    node.destroy_node()
    rclpy.shutdown()
    return sent


def run_profile(profile: Path, args: argparse.Namespace, domain: int) -> dict:
    env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(profile), ROS_DOMAIN_ID=str(domain),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    env.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='bench_big_frames_log_'))
    listener = subprocess.Popen([sys.executable, __file__, '--listen'], env=env,
                                stdout=subprocess.PIPE, text=True)
    assert listener.stdout is not None
    listener.stdout.readline()  # ready
    sender = subprocess.run([sys.executable, __file__, '--send', '--frames', str(args.frames),
                             '--rate', str(args.rate), '--sizes', args.sizes], env=env,
                            capture_output=True, text=True, check=True)
    sent = json.loads(sender.stdout.strip().splitlines()[-1])
    arrived = json.loads(listener.stdout.readline() or '{}')
    listener.wait(30)
    return {size: (arrived.get(size, 0), n) for size, n in sent.items()}


def parse_sizes(text: str) -> list:
    return [tuple(int(v) for v in item.split('x')) for item in text.split(',')]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--rate', type=float, default=5.0, help='frames per second (5)')
    parser.add_argument('--sizes', default='1920x1080,3840x2160', help='WxH,WxH')
    parser.add_argument('--listen', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--send', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listen:
        listen(idle=3.0)
        return
    if args.send:
        print(json.dumps(send(parse_sizes(args.sizes), args.frames, args.rate)))
        return
    old = Path(tempfile.mkdtemp(prefix='bench_big_frames_')) / 'segment_8mib.xml'
    old.write_text(re.sub(r'<segment_size>\d+</segment_size>',
                          '<segment_size>8388608</segment_size>', PROFILE.read_text()))
    shipped = re.search(r'<segment_size>(\d+)</segment_size>', PROFILE.read_text())
    domain = 100 + os.getpid() % 50
    print(f'{args.frames} bgr8 frames per size at {args.rate:g} Hz, SensorData QoS, '
          'two processes')
    for name, profile in ((f'shipped ({int(shipped.group(1)) >> 20} MiB segment)', PROFILE),
                          ('8 MiB segment (before)', old)):
        result = run_profile(profile, args, domain)
        line = ', '.join(f'{size}: {got}/{n} arrived' for size, (got, n) in result.items())
        print(f'{name:<28} {line}')


if __name__ == '__main__':
    main()
