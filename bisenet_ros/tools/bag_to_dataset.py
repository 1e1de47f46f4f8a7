"""``bisenet bag-to-dataset``: a robot's bag -> a dataset folder ``bisenet train`` reads.

Frames of the image topic are kept every ``--every`` frames or on scene change
(``--scene-change``); ``--teacher`` labels them with a model (the packaged one by default), by
multi-scale + flip inference, setting pixels below ``--confidence-threshold`` to the ignore id.
The folder holds ``train_images/`` (and ``val_images/`` with ``--val-every``), the labels, a
``train.yaml`` for ``bisenet train --config`` and a ``manifest.json``. See docs/robot_data.md.

Examples::

    bisenet bag-to-dataset robot_bag/ -o robot_data --scene-change 0.08 --teacher
    bisenet bag-to-dataset robot_bag/ -o robot_frames --every 15     # images only, to label
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from ..images import reverse_channels

DEFAULT_SCALES = (0.75, 1.0, 1.25, 1.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('bag', help='rosbag2 folder (sqlite3/mcap) or ROS 1 .bag file')
    parser.add_argument('-o', '--output', required=True, help='dataset folder to write')
    parser.add_argument('--image-topic', default='/camera/image_raw',
                        help='sensor_msgs/Image or CompressedImage topic (default: '
                        '/camera/image_raw, or its /compressed sibling)')
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument('--every', type=int, default=None, metavar='N',
                      help='keep every N-th frame (default: 1 unless --scene-change)')
    pick.add_argument('--scene-change', type=float, default=None, metavar='DIFF',
                      help='keep a frame when the mean abs difference (0..1) of its small grey '
                      'thumbnail from the last kept frame is at least DIFF (e.g. 0.08)')
    parser.add_argument('--max-frames', type=int, help='stop after this many kept frames')
    parser.add_argument('--val-every', type=int, default=0, metavar='N',
                        help='every N-th kept frame goes to val_images/ (default 0: none)')
    parser.add_argument('--teacher', action='store_true',
                        help='label the frames with --model (multi-scale + flip)')
    parser.add_argument('--model', help='teacher checkpoint (default: the packaged CamVid '
                        'model)')
    parser.add_argument('--teacher-scales', type=float, nargs='+', default=list(DEFAULT_SCALES),
                        help=f'scales of the teacher (default: {DEFAULT_SCALES})')
    parser.add_argument('--no-flip', action='store_true', help='teacher without flipped views')
    parser.add_argument('--confidence-threshold', type=float, default=0.7,
                        help='teacher pixels less confident than this get the ignore id '
                        '(default 0.7; 0 keeps all)')
    parser.add_argument('--label-set', help="teacher label set (default: the model's)")
    parser.add_argument('--device', default='cpu', help='teacher device: cpu, cuda[:i], auto')
    parser.add_argument('--threads', type=int, help='CPU threads for the teacher')
    parser.add_argument('--reader', choices=('auto', 'rosbag2_py', 'rosbags'), default='auto',
                        help='bag reader (default: rosbag2_py when installed, else rosbags)')
    parser.add_argument('--force', action='store_true',
                        help='replace an output folder written by bag-to-dataset before')


def _teacher(args: argparse.Namespace) -> Tuple[Any, Any, Dict[str, Any]]:
    """(teacher callable, its label set, its description) from the arguments."""
    import torch

    from ..model.checkpoint import load_model
    from ..training.validation import predict_probabilities
    from .segment_image import resolve_model
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available()
                          else ('cpu' if args.device == 'auto' else args.device))
    path = resolve_model(args.model)
    model = load_model(path, label_set=args.label_set, device=device)
    label_set = model.label_set
    scales, flip = tuple(args.teacher_scales), not args.no_flip
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f'--teacher-scales must be positive numbers, got {scales}')

    def teacher(bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        rgb = reverse_channels(bgr)
        probs = predict_probabilities(model, rgb, mean=label_set.mean, std=label_set.std,
                                      scales=scales, flip=flip, device=device) / len(scales)
        confidence, ids = probs.max(dim=0)
        return ids.cpu().numpy(), confidence.cpu().numpy()
    info = {'model': str(Path(path).resolve()), 'scales': list(scales), 'flip': flip,
            'device': str(device)}
    return teacher, label_set, info


def run(args: argparse.Namespace) -> int:
    from ..bags.reader import BagReader
    from ..bags.to_dataset import bag_to_dataset, FrameSelector
    from ..evaluation.bag_frames import resolve_image_topic
    if args.scene_change is not None:
        selector = FrameSelector('scene-change', threshold=args.scene_change)
    else:
        selector = FrameSelector('stride', stride=args.every or 1)
    with BagReader(args.bag, backend=args.reader) as reader:
        topic = resolve_image_topic(reader, args.image_topic)
    teacher, label_set, info = _teacher(args) if args.teacher else (None, None, None)
    manifest = bag_to_dataset(args.bag, args.output, topic, selector=selector,
                              max_frames=args.max_frames, teacher=teacher, teacher_info=info,
                              label_set=label_set,
                              confidence_threshold=args.confidence_threshold if teacher else 0.0,
                              val_every=args.val_every, overwrite=args.force,
                              reader_backend=args.reader,
                              init_model=info['model'] if info else None)
    frames = manifest['frames']
    print(f"wrote {len(frames)} frames of {topic} to {args.output} "
          f"({sum(f['split'] == 'val' for f in frames)} val); "
          + (f"teacher labels, {100 * manifest['teacher']['ignored_share']:.1f}% of pixels "
             f'below {args.confidence_threshold} set to ignore' if teacher else 'images only')
          + f'\n  train: bisenet train --config {Path(args.output) / "train.yaml"}')
    return 0
