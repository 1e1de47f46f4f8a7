r"""``bisenet make-bag``: write a ROS 2 bag of camera images + ground-truth labels from a dataset.

Examples::

    bisenet make-bag camvid_val.bag --dataset camvid --root ../shared/datasets/camvid \
        --split val --sequence 0016E5 --rate 15
    bisenet make-bag city.bag --dataset cityscapes --root ~/cityscapes --split val --limit 50 \
        --storage sqlite3 --compressed
    bisenet make-bag mine.bag --dataset folder --images imgs/ --labels masks/ \
        --label-set my_labels.yaml
"""

from __future__ import annotations

import argparse

from ..bags.make import BagTopics, COMPRESSED_SUFFIX, IMAGE_TOPIC, LABEL_TOPIC
from ..bags.writer import METADATA_VERSION, STORAGES

DATASET_KINDS = ('camvid', 'cityscapes', 'folder', 'demo')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bisenet make-bag``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('output', help='bag directory to create')
    src = parser.add_argument_group('source frames')
    src.add_argument('--dataset', choices=DATASET_KINDS, default='camvid',
                     help='dataset layout (default: camvid; demo = the packaged frames)')
    src.add_argument('--root', help='dataset folder (camvid, cityscapes)')
    src.add_argument('--split', default='val', help='split name (default: val)')
    src.add_argument('--sequence', help='only files whose name starts with this '
                     '(CamVid sequence such as 0016E5, Cityscapes city)')
    src.add_argument('--images', help='image folder (--dataset folder)')
    src.add_argument('--labels', help='label PNG folder, same file stems (--dataset folder)')
    src.add_argument('--label-set', help='label set name or YAML (--dataset folder)')
    src.add_argument('--start', type=int, default=0, help='first frame index (default: 0)')
    src.add_argument('--stride', type=int, default=1, help='take every n-th frame (default: 1)')
    src.add_argument('--limit', type=int, help='at most this many frames')
    out = parser.add_argument_group('bag')
    out.add_argument('--storage', choices=STORAGES, default='mcap', help='default: mcap')
    out.add_argument('--rate', type=float, default=10.0,
                     help='frames per second of the header stamps (default: 10)')
    out.add_argument('--start-time', type=float,
                     help='stamp of the first frame, seconds since epoch (default: now)')
    out.add_argument('--frame-id', default='camera', help="header frame_id (default: camera)")
    out.add_argument('--image-topic', default=IMAGE_TOPIC, help=f'default: {IMAGE_TOPIC}')
    out.add_argument('--label-topic', default=LABEL_TOPIC,
                     help=f'mono8 ground truth, 255 = unlabelled (default: {LABEL_TOPIC})')
    out.add_argument('--no-labels', action='store_true', help='write images only')
    out.add_argument('--compressed', action='store_true',
                     help=f'also write <image-topic>{COMPRESSED_SUFFIX} (JPEG)')
    out.add_argument('--encoding', choices=('bgr8', 'rgb8'), default='bgr8',
                     help='raw image encoding (default: bgr8)')
    out.add_argument('--distro', choices=sorted(METADATA_VERSION), default='kilted',
                     help='message definitions / metadata version (default: kilted)')
    out.add_argument('--writer', choices=('auto', 'rosbag2_py', 'rosbags'), default='auto',
                     help='bag library (default: rosbag2_py when importable, else rosbags)')
    out.add_argument('--force', action='store_true', help='replace an existing bag')


def run(args: argparse.Namespace) -> int:
    """Write the bag; prints what was written. Returns the exit code."""
    from ..training import datasets  # OpenCV and the training loaders only when the command runs
    from ..bags.make import select_indices, write_frames_bag
    from ..evaluation.progress import progress_bar

    dataset = datasets.open_dataset(args.dataset, root=args.root, split=args.split,
                                    sequence=args.sequence, images=args.images,
                                    labels=args.labels, label_set=args.label_set)
    indices = select_indices(len(dataset), args.start, args.stride, args.limit)
    topics = BagTopics(image=args.image_topic,
                       labels=None if args.no_labels else args.label_topic,
                       compressed=args.image_topic + COMPRESSED_SUFFIX if args.compressed
                       else None)
    start_ns = None if args.start_time is None else int(round(args.start_time * 1e9))
    with progress_bar(len(indices), 'make-bag') as bar:
        summary = write_frames_bag(dataset.load, indices, args.output, storage=args.storage,
                                   rate_hz=args.rate, frame_id=args.frame_id, topics=topics,
                                   encoding=args.encoding, start_ns=start_ns,
                                   distro=args.distro, backend=args.writer,
                                   overwrite=args.force,
                                   progress=bar.update)
    print(f'wrote {summary.frames} frames of {dataset.name} to {summary.path} '
          f'({summary.storage}, {args.rate:g} Hz, via {summary.backend})')
    print('topics: ' + ', '.join(summary.topics))
    return 0
