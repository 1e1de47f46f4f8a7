"""``bisenet eval-bag``: how well and how fast models segment a recorded bag.

Offline (default): runs each ``--model`` in this process on every image of the bag. Live
(``--live``): replays the bag's images through a running segmentation node over ROS and scores
the masks it publishes (``--start-node`` starts one); ``--listen`` only listens while you run
``ros2 bag play``. Ground truth (``/camera/labels``, mono8) is matched by header stamp.

Examples::

    bisenet eval-bag camvid_val.bag                      # default model, offline
    bisenet eval-bag my.bag --model a.pt --model a.onnx  # two models + their agreement
    bisenet eval-bag my.bag --model a.onnx --backend onnxruntime --backend tensorrt
    bisenet eval-bag my.bag --live --rate-scale 2        # through the running node, 2x speed
    bisenet eval-bag camvid_val.bag --smoothing 0.5      # flicker and mIoU, smoothed offline

Every model's report has mIoU (with ground truth) and flicker: the share of pixels whose label
changes between consecutive frames.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
import random
from typing import Any, Dict, List, Optional

LOG = logging.getLogger(__name__)
DEFAULT_IMAGE_TOPIC = '/camera/image_raw'
DEFAULT_MASK_TOPIC = '/segmentation/mask'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bisenet eval-bag``."""
    from ..inference.backends import BACKENDS, PRECISION_CHOICES
    from ..temporal_smoothing import DEFAULT_MAX_GAP_S
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('bag', help='rosbag2 folder (sqlite3/mcap) or ROS 1 .bag file')
    models = parser.add_argument_group('models (offline)')
    models.add_argument('--model', action='append', default=[],
                        help='checkpoint, .onnx, OpenVINO .xml or engine; repeat to compare '
                        '(default: the '
                        'packaged CamVid model)')
    models.add_argument('--backend', action='append', default=[],
                        choices=BACKENDS, help='one for all models or one per model (the '
                        'same model twice with two backends is allowed)')
    models.add_argument('--precision', action='append', default=[],
                        choices=PRECISION_CHOICES,
                        help='one for all or one per model (an int8 .onnx from `bisenet export '
                        '--int8` runs as int8 whatever is asked)')
    models.add_argument('--device', default='cpu',
                        help='cpu, cuda[:i], gpu[:i] (OpenVINO GPU) or auto (default: cpu)')
    models.add_argument('--input-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input size (default: each image at its own size)')
    models.add_argument('--threads', type=int, help='CPU threads for inference')
    models.add_argument('--label-set', help="label set name/YAML (default: the model's)")
    models.add_argument('--smoothing', type=float, metavar='W',
                        help='offline: average class probabilities over frames, weight W of '
                        'the newest in (0, 1] (1: the same path unsmoothed; default: off)')
    models.add_argument('--smoothing-max-gap', type=float, default=DEFAULT_MAX_GAP_S,
                        metavar='S', help='with --smoothing: start the average again after a '
                        f'stamp gap over S seconds (default: {DEFAULT_MAX_GAP_S:g})')
    bag = parser.add_argument_group('bag')
    bag.add_argument('--image-topic', default=DEFAULT_IMAGE_TOPIC,
                     help=f'Image or CompressedImage topic (default: {DEFAULT_IMAGE_TOPIC}, '
                     'or its /compressed sibling)')
    bag.add_argument('--label-topic', default='auto',
                     help="mono8 ground truth (default 'auto': /camera/labels if present)")
    bag.add_argument('--no-labels', action='store_true', help='ignore ground truth')
    bag.add_argument('--stamp-tolerance-ms', type=float, default=0.0,
                     help='match ground truth within this many ms (default: exact stamps)')
    bag.add_argument('--match-window', type=float, default=2.0,
                     help='seconds of bag time to wait for a partner message (default: 2)')
    bag.add_argument('--limit', type=int, help='only the first N images')
    bag.add_argument('--reader', choices=('auto', 'rosbag2_py', 'rosbags'), default='auto',
                     help='bag library (default: rosbag2_py when importable, else rosbags)')
    live = parser.add_argument_group('live (through the ROS node)')
    live.add_argument('--live', action='store_true', help='replay through a running node')
    live.add_argument('--listen', action='store_true',
                      help='only listen while `ros2 bag play BAG` publishes the images')
    live.add_argument('--start-node', action='store_true',
                      help='with --live: start the node (first --model) on a private domain')
    live.add_argument('--rate-scale', type=float, default=1.0,
                      help='replay speed as a multiple of the recorded rate (default: 1)')
    live.add_argument('--max-in-flight', type=int, default=0,
                      help='pace the replay to the node: publish a frame only when fewer than '
                      'N frames await their mask (default 0: strict recorded timing)')
    live.add_argument('--mask-topic', default=DEFAULT_MASK_TOPIC,
                      help=f'the node output (default: {DEFAULT_MASK_TOPIC})')
    live.add_argument('--connect-timeout', type=float, default=60.0,
                      help='seconds to wait for the node (default: 60)')
    live.add_argument('--drain', type=float, default=5.0,
                      help='seconds to wait for masks after the last frame (default: 5)')
    gate = parser.add_argument_group('accept / reject (exit code 3 when a check fails)')
    gate.add_argument('--min-agreement', type=float, metavar='MIOU',
                      help='every model after the first must reach this agreement mIoU (0..1) '
                      'against the first, e.g. 0.95 for an fp16 engine against fp32')
    gate.add_argument('--min-miou', type=float, metavar='MIOU',
                      help='every model must reach this mIoU (0..1) on the ground truth')
    out = parser.add_argument_group('output')
    out.add_argument('--output', '-o', help='report folder (default: ./bisenet_eval_<bag>)')
    out.add_argument('--samples', type=int, default=6, help='overlay images to write')
    out.add_argument('--no-plots', action='store_true', help='skip the PNG plots')
    out.add_argument('--progress', action=argparse.BooleanOptionalAction, default=None,
                     help='progress bar (default: when stderr is a terminal)')


def _per_model(values: List[str], count: int, default: str, flag: str) -> List[str]:
    if not values:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ValueError(f'{flag} given {len(values)} times for {count} models; give it once '
                         'or once per model')
    return values


def _models(args: argparse.Namespace) -> List[str]:
    """Model paths; one model with several backends becomes one entry per backend."""
    from ..resources import default_model_path
    paths = list(args.model)
    if not paths:
        default = default_model_path()
        if not default.is_file():
            raise FileNotFoundError(f'the default model {default} is not installed; pass '
                                    '--model PATH')
        paths = [str(default)]
    if len(paths) == 1 and len(args.backend) > 1:
        paths = paths * len(args.backend)
    return paths


def open_frames(args: argparse.Namespace) -> Any:
    """(reader, BagFrames, label topic) for the bag named in ``args``."""
    from ..bags.reader import BagReader
    from ..evaluation.bag_frames import BagFrames, resolve_image_topic, resolve_label_topic
    reader = BagReader(args.bag, backend=args.reader)
    image_topic = resolve_image_topic(reader, args.image_topic)
    label_topic = None if args.no_labels else resolve_label_topic(reader, args.label_topic)
    frames = BagFrames(reader, image_topic, label_topic, window_s=args.match_window,
                       tolerance_s=args.stamp_tolerance_ms / 1e3, limit=args.limit)
    return reader, frames, label_topic


def output_dir(args: argparse.Namespace) -> Path:
    """``--output`` or ``./bisenet_eval_<bag name>``."""
    return Path(args.output or f'bisenet_eval_{Path(args.bag).resolve().name}')


def source_info(args: argparse.Namespace, reader: Any, frames: Any, mode: str) -> Dict:
    """The report's ``source`` section."""
    return {'bag': str(Path(args.bag).resolve()), 'mode': mode, 'reader': reader.backend_name,
            'image_topic': frames.image_topic, 'label_topic': frames.label_topic}


def _predictors(args: argparse.Namespace) -> Any:
    """One Segmenter-backed predictor per model/backend/precision, and their label set."""
    from ..evaluation.offline import NamedPredictor, segmenter_predictor, smoothed_predictor
    from ..inference import Segmenter
    from ..inference.threads import set_torch_threads
    set_torch_threads(args.threads)
    paths = _models(args)
    backends = _per_model(args.backend, len(paths), 'auto', '--backend')
    precisions = _per_model(args.precision, len(paths), 'fp32', '--precision')
    predictors, label_set = [], None
    for path, backend, precision in zip(paths, backends, precisions):
        seg = Segmenter(path, backend=backend, input_size=args.input_size, device=args.device,
                        precision=precision, label_set=args.label_set, threads=args.threads)
        if label_set is None:
            label_set = seg.label_set
        elif seg.label_set.num_classes != label_set.num_classes:
            raise ValueError(f'{path} predicts {seg.label_set.num_classes} classes but '
                             f'{paths[0]} predicts {label_set.num_classes}')
        details = {'model': str(Path(path).resolve()), 'backend': seg.backend_name,
                   'precision': precision, 'device': args.device}
        name = f'{Path(path).name} [{seg.backend_name}, {precision}]'
        if args.smoothing is None:
            predictors.append(NamedPredictor(name, segmenter_predictor(seg), details))
        else:
            details['smoothing'] = args.smoothing
            predictors.append(NamedPredictor(
                f'{name[:-1]}, smoothing {args.smoothing:g}]',
                smoothed_predictor(seg, args.smoothing, args.smoothing_max_gap), details,
                stamped=True))
    return predictors, label_set


def _offline(args: argparse.Namespace) -> Dict[str, Any]:
    from ..evaluation.offline import evaluate_frames, frame_accounting
    from ..evaluation.outputs import write_outputs
    from ..evaluation.progress import progress_bar
    reader, frames, label_topic = open_frames(args)  # a bad bag fails before models load
    try:
        predictors, label_set = _predictors(args)
    except BaseException:
        reader.close()
        raise
    with reader, progress_bar(frames.total, 'eval-bag', args.progress) as bar:
        every = max(1, (frames.total or 1) // max(1, args.samples)) if args.samples else 0
        evaluation = evaluate_frames(frames, predictors, label_set, sample_every=every,
                                     max_samples=args.samples, progress=bar.update)
        evaluation.info.source = source_info(args, reader, frames, 'offline')
        evaluation.info.frames = frame_accounting(frames.counts, label_topic is not None)
    if frames.counts.images == 0:
        raise ValueError(f'bag {args.bag}: no images on {frames.image_topic}')
    return write_outputs(evaluation, output_dir(args), plots=not args.no_plots)


def _live_label_set(args: argparse.Namespace, model: Optional[str]) -> Any:
    from ..labels import load_label_set
    if args.label_set:
        return load_label_set(args.label_set)
    if model and Path(model).suffix in ('.pt', '.pth'):
        from ..model.checkpoint import read_checkpoint
        info = read_checkpoint(model)[1]
        if info.label_set is not None:
            return info.label_set
    LOG.warning('no --label-set and no label set in the model: assuming camvid')
    return load_label_set('camvid')


def run_live(args: argparse.Namespace, node_params: Optional[Dict[str, Any]] = None
             ) -> Dict[str, Any]:
    """Replay (or listen) through the node; ``--start-node`` runs one on a private domain."""
    from ..evaluation.live import evaluate_record, outgoing_frames
    from ..evaluation.offline import frame_accounting
    from ..evaluation.outputs import write_outputs
    from ..evaluation.progress import progress_bar
    from ..resources import large_message_profile
    from ..ros.clients import replay as ros_replay
    model = _models(args)[0] if (args.start_node or args.model) else None
    label_set = _live_label_set(args, model)
    reader, bag_frames, label_topic = open_frames(args)
    with reader:
        frames = list(bag_frames)  # a live replay needs every frame ready on time
    if not frames:
        raise ValueError(f'bag {args.bag}: no images on {bag_frames.image_topic}')
    out_dir = output_dir(args)
    profile = large_message_profile()
    if profile is not None:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    image_topic = args.image_topic.removesuffix('/compressed')
    domain_id, node = None, None
    if args.start_node:
        from ..ros.clients.node_process import NodeProcess
        domain_id = random.randint(120, 199)  # private: a robot's own camera cannot interfere
        params = {'model_path': str(Path(model).resolve()), 'image_topics': [image_topic],
                  'publish_color_mask': False, 'publish_overlay': False,
                  'device': args.device, **(node_params or {})}
        if args.backend:
            params['backend'] = args.backend[0]
        if args.precision:
            params['precision'] = args.precision[0]
        if args.threads:
            params['threads'] = args.threads
        if args.input_size:
            params['input_size'] = list(args.input_size)
        node = NodeProcess(params, domain_id, fastdds_profile=str(profile) if profile else None,
                           log_path=out_dir / 'node.log')
    try:
        if args.listen:
            record = ros_replay.listen(image_topic, args.mask_topic, domain_id=domain_id)
        else:
            with progress_bar(len(frames), 'replay', args.progress) as bar:
                record = ros_replay.replay(
                    outgoing_frames(frames), image_topic, args.mask_topic, args.rate_scale,
                    connect_timeout_s=args.connect_timeout, drain_s=args.drain,
                    on_sent=bar.update, domain_id=domain_id,
                    max_in_flight=args.max_in_flight)
    except ros_replay.ReplayError as exc:
        if node is not None:
            tail = '\n'.join(node.log().splitlines()[-15:])
            raise ros_replay.ReplayError(f'{exc}\nnode log ({node.log_path}):\n{tail}') from exc
        raise
    finally:
        if node is not None:
            node.stop()
    details = {'node': 'started by eval-bag' if node else 'running', 'mask_topic':
               args.mask_topic, 'rate_scale': args.rate_scale,
               'max_in_flight': args.max_in_flight}
    if model:
        details['model'] = str(Path(model).resolve())
    every = max(1, len(frames) // max(1, args.samples)) if args.samples else 0
    evaluation = evaluate_record(frames, record, label_set, 'segmentation_node', details,
                                 listen_mode=args.listen, sample_every=every,
                                 max_samples=args.samples)
    evaluation.info.source = source_info(args, reader, bag_frames,
                                         'listen' if args.listen else 'live replay')
    evaluation.info.frames = {**frame_accounting(bag_frames.counts, label_topic is not None),
                              **evaluation.info.frames}
    return write_outputs(evaluation, out_dir, plots=not args.no_plots)


def run(args: argparse.Namespace) -> int:
    """Evaluate offline, live or listening; prints the summary. Returns the exit code."""
    if args.live and args.listen:
        raise ValueError('choose --live (replay) or --listen, not both')
    if args.start_node and not args.live:
        raise ValueError('--start-node needs --live')
    if args.smoothing is not None:
        from ..temporal_smoothing import check_bounds, check_weight
        check_weight(args.smoothing)
        check_bounds(args.smoothing_max_gap)
        if args.live or args.listen:
            raise ValueError('--smoothing applies to the offline evaluation (the node smooths '
                             'with its own parameter)')
    if args.live or args.listen:
        result = run_live(args)
    else:
        result = _offline(args)
    print_result(result)
    from ..evaluation.gates import check_gates
    failures = check_gates(result['report'], args.min_agreement, args.min_miou)
    for failure in failures:
        print(f'  REJECT: {failure}')
    dropped = result['report']['frames'].get('dropped_share') or 0.0
    if dropped > 0.2:
        from ..resources import FASTDDS_PROFILE, find_config_file
        try:
            profile: Optional[Path] = find_config_file(FASTDDS_PROFILE)
        except FileNotFoundError:
            profile = None
        print(f'  {100 * dropped:.0f}% of the frames got no mask. A node slower than the replay '
              'drops frames (try --max-in-flight 1 or --rate-scale 0.5); images over ~0.5 MB '
              'may also be lost between processes unless the node runs with '
              'FASTDDS_DEFAULT_PROFILES_FILE set to a large shared-memory profile'
              + (f' such as {profile}' if profile else ''))
    return 3 if failures else 0


def print_result(result: Dict[str, Any], header: Optional[str] = None) -> None:
    """Console summary and where the files are."""
    if header:
        print(header)
    for line in result['summary']:
        print('  ' + line)
    print(f"  report: {result['paths']['markdown']} (and report.json, "
          f"{len(result['images'])} images) in {result['paths']['markdown'].parent}")
