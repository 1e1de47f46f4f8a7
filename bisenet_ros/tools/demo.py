"""``bisenet demo``: real street scenes through the ROS node, scored, in one command.

With no arguments: builds (or reuses) a bag of the 15 CamVid frames shipped in the package,
starts the segmentation node with the default model on a private ROS domain, replays the bag
through it at the recorded rate, and writes the report, plots and overlay frames to
``./bisenet_demo_output/``. The demo frames are CamVid (Brostow et al. 2008), CC BY-NC 4.0:
research and non-commercial use only (see ``bisenet_ros/data/demo/NOTICE.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from ..inference.backends import BACKENDS, PRECISION_CHOICES

DEFAULT_OUTPUT = 'bisenet_demo_output'
#: The demo frames are every 4th frame of 30 Hz video: 7.5 Hz is their real rate.
DEMO_RATE_HZ = 7.5
DEMO_START_S = 1_700_000_000.0


#: What the demo's accuracy is not: printed under it (issue 22).
DEMO_ACCURACY_CAVEAT = ('a familiar scene, not an unseen camera; on the CamVid test split, '
                        'measured independently, the packaged model scores 59.2 % mIoU)')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bisenet demo`` (all optional)."""
    parser.add_argument('--output', '-o', default=DEFAULT_OUTPUT,
                        help=f'output folder (default: ./{DEFAULT_OUTPUT})')
    parser.add_argument('--model', help='model file (default: the packaged CamVid model)')
    parser.add_argument('--rate', type=float, default=DEMO_RATE_HZ,
                        help=f'frames per second of the replay (default: {DEMO_RATE_HZ:g})')
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help=f'{", ".join(BACKENDS)} (default: auto)')
    parser.add_argument('--frames', type=int, help='use only the first N demo frames')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or auto (default: cpu)')
    parser.add_argument('--precision', choices=PRECISION_CHOICES,
                        help="numeric precision (default: the node's, auto)")
    parser.add_argument('--threads', type=int, help='CPU threads for inference')
    parser.add_argument('--max-in-flight', type=int, default=1,
                        help='frames awaiting a mask before the replay waits (default 1: each '
                        'frame measured alone, nothing dropped on a slow CPU; 0: strict timing)')
    parser.add_argument('--rebuild', action='store_true', help='rebuild the demo bag')


def _demo_bag(out_dir: Path, rate: float, rebuild: bool, frames: Optional[int]) -> Path:
    """The demo bag in ``out_dir``, built unless a complete one like it exists."""
    from ..training.datasets import demo_dataset
    from ..bags.make import write_frames_bag
    from ..bags.reader import BagError, BagReader
    dataset = demo_dataset()
    count = min(frames or len(dataset), len(dataset))
    bag = out_dir / f'demo_bag_{count}frames_{rate:g}hz'
    if bag.exists() and not rebuild:
        try:
            with BagReader(bag, backend='rosbags') as reader:
                if all(reader.topics.get(t) and reader.topics[t].count == count
                       for t in ('/camera/image_raw', '/camera/labels')):
                    return bag
        except BagError:
            pass
    write_frames_bag(dataset.load, range(count), bag, rate_hz=rate,
                     start_ns=int(DEMO_START_S * 1e9), frame_id='camera', overwrite=True)
    return bag


def run(args: argparse.Namespace) -> int:
    """Run the demo; 2 when the model file is missing, 0 on success."""
    from ..resources import default_model_path
    from . import eval_bag
    model = Path(args.model) if args.model else default_model_path()
    if not model.is_file():
        what = 'model' if args.model else 'default model (the packaged CamVid BiSeNet V2)'
        print(f'bisenet demo: the {what} was not found at {model}.\n'
              '  Reinstall the package (the file ships in bisenet_ros/data/) or pass '
              '--model PATH to a checkpoint.')
        return 2
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f'bisenet demo: CamVid street scenes -> segmentation_node ({model.name}) -> report')
    bag = _demo_bag(out_dir, args.rate, args.rebuild, args.frames)
    result = eval_bag.run_live(eval_bag.LiveOptions(
        eval_bag.BagSource(str(bag)), model=str(model), start_node=True, backend=args.backend,
        precision=args.precision, device=args.device, threads=args.threads,
        max_in_flight=args.max_in_flight, connect_timeout_s=120.0, output=str(out_dir),
        samples=15))
    _print_summary(result, out_dir, bag, args.rate)
    return 0


def _print_summary(result: dict, out_dir: Path, bag: Path, rate: float) -> None:
    report = result['report']
    model = report['models'][0]
    frames = report['frames']
    acc = model.get('accuracy') or {}
    e2e = (model.get('latency_ms') or {}).get('end_to_end') or {}

    def pct(v: Optional[float]) -> str:
        return 'n/a' if v is None else f'{100 * v:.1f}%'

    def ms(v: Optional[float]) -> str:
        return 'n/a' if v is None else f'{v:.0f} ms'

    print(f"  frames: {frames.get('sent')} sent, {frames.get('masks_received')} segmented, "
          f"{frames.get('dropped')} dropped ({pct(frames.get('dropped_share'))})")
    print(f"  accuracy: mIoU {pct(acc.get('miou'))}, pixel accuracy "
          f"{pct(acc.get('pixel_accuracy'))} on {model.get('frames_scored', 0)} labelled frames "
          f'of CamVid val (sequence 0016E5, whose other frames the packaged model trained on:')
    print(f'    {DEMO_ACCURACY_CAVEAT}')
    fps = frames.get('output_fps')
    p50 = e2e.get('p50_ms')
    speed = f'{fps:.1f} masks/s delivered at a {rate:g} Hz replay' if fps else 'n/a'
    if p50:
        speed += f' (one frame at a time: about {1000 / p50:.1f} FPS)'
    print(f'  speed: {speed}')
    print(f"  end-to-end latency (image published -> mask received): p50 {ms(p50)}, "
          f"p95 {ms(e2e.get('p95_ms'))}, max {ms(e2e.get('max_ms'))}")
    print(f"  files: {out_dir.resolve()}/ (report.md, report.json, plots, "
          f"{sum(1 for n in result['images'] if n.startswith('sample'))} overlay frames, "
          f"node.log; bag {bag.name})")
    print('  demo frames: CamVid (Brostow et al. 2008), CC BY-NC 4.0, non-commercial use only')
