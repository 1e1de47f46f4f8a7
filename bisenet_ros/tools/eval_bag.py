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
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import random
from typing import Any, Dict, List, Optional, Tuple

LOG = logging.getLogger(__name__)
DEFAULT_IMAGE_TOPIC = '/camera/image_raw'
DEFAULT_MASK_TOPIC = '/segmentation/mask'


@dataclass(frozen=True)
class BagSource:
    """The bag and how its frames are read and matched to ground truth (offline and live).

    ``path``: rosbag2 folder or ROS 1 ``.bag``; ``reader``: ``auto``, ``rosbag2_py`` or
    ``rosbags``; ``label_topic``: mono8 ground truth (``auto``: /camera/labels if present);
    ``labels``: False ignores ground truth; ``stamp_tolerance_ms``: match ground truth within
    this many milliseconds (0: exact stamps); ``match_window_s``: seconds of bag time to wait for
    a partner message; ``limit``: only the first N images.
    """

    path: str
    reader: str = 'auto'
    image_topic: str = DEFAULT_IMAGE_TOPIC
    label_topic: str = 'auto'
    labels: bool = True
    stamp_tolerance_ms: float = 0.0
    match_window_s: float = 2.0
    limit: Optional[int] = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'BagSource':
        """The ``bag`` options of parsed ``eval-bag`` arguments."""
        return cls(args.bag, reader=args.reader, image_topic=args.image_topic,
                   label_topic=args.label_topic, labels=not args.no_labels,
                   stamp_tolerance_ms=args.stamp_tolerance_ms, match_window_s=args.match_window,
                   limit=args.limit)


@dataclass(frozen=True)
class LiveOptions:
    """A live evaluation: ``source`` replayed through the node (or, ``listen``, only listened to).

    ``model``: the node's model (``start_node``: the model it runs, default the packaged one;
    otherwise only where the label set comes from); ``backend``, ``precision``, ``device``,
    ``threads`` and ``input_size`` (H, W in pixels) are the started node's parameters (None: the
    node's own default). ``start_node`` runs the node in a child process on a private ROS domain.
    ``rate_scale``: replay speed as a multiple of the recorded rate; ``max_in_flight`` > 0 paces
    the replay to the node (0: strict recorded timing); ``connect_timeout_s``: seconds to wait for
    the node; ``drain_s``: seconds to wait for masks after the last frame. ``output``: report
    folder (None: ``./bisenet_eval_<bag name>``); ``samples``: overlay images to write;
    ``progress``: progress bar (None: when stderr is a terminal).
    """

    source: BagSource
    model: Optional[str] = None
    label_set: Optional[str] = None
    start_node: bool = False
    backend: Optional[str] = None
    precision: Optional[str] = None
    device: str = 'cpu'
    threads: Optional[int] = None
    input_size: Optional[Tuple[int, int]] = None
    listen: bool = False
    rate_scale: float = 1.0
    max_in_flight: int = 0
    mask_topic: str = DEFAULT_MASK_TOPIC
    connect_timeout_s: float = 60.0
    drain_s: float = 5.0
    output: Optional[str] = None
    samples: int = 6
    plots: bool = True
    progress: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.start_node and self.listen:
            raise ValueError('start_node replays the bag through the node it starts; listen '
                             'only listens: choose one')

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> 'LiveOptions':
        """The options of parsed ``eval-bag --live``/``--listen`` arguments."""
        return cls(BagSource.from_args(args), model=args.model[0] if args.model else None,
                   label_set=args.label_set, start_node=args.start_node,
                   backend=args.backend[0] if args.backend else None,
                   precision=args.precision[0] if args.precision else None,
                   device=args.device, threads=args.threads,
                   input_size=(args.input_size[0], args.input_size[1]) if args.input_size
                   else None,
                   listen=args.listen, rate_scale=args.rate_scale,
                   max_in_flight=args.max_in_flight, mask_topic=args.mask_topic,
                   connect_timeout_s=args.connect_timeout, drain_s=args.drain,
                   output=args.output, samples=args.samples, plots=not args.no_plots,
                   progress=args.progress)


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
                        help="one for all or one per model (default: auto, the node's rule; an "
                        'int8 .onnx from `bisenet export --int8` runs as int8 whatever is '
                        'asked)')
    models.add_argument('--device', default=LiveOptions.device,
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
    bag.add_argument('--image-topic', default=BagSource.image_topic,
                     help=f'Image or CompressedImage topic (default: {DEFAULT_IMAGE_TOPIC}, '
                     'or its /compressed sibling)')
    bag.add_argument('--label-topic', default=BagSource.label_topic,
                     help="mono8 ground truth (default 'auto': /camera/labels if present)")
    bag.add_argument('--no-labels', action='store_true', help='ignore ground truth')
    bag.add_argument('--stamp-tolerance-ms', type=float, default=BagSource.stamp_tolerance_ms,
                     help='match ground truth within this many ms (default: exact stamps)')
    bag.add_argument('--match-window', type=float, default=BagSource.match_window_s,
                     help='seconds of bag time to wait for a partner message '
                     f'(default: {BagSource.match_window_s:g})')
    bag.add_argument('--limit', type=int, help='only the first N images')
    bag.add_argument('--reader', choices=('auto', 'rosbag2_py', 'rosbags'),
                     default=BagSource.reader,
                     help='bag library (default: rosbag2_py when importable, else rosbags)')
    live = parser.add_argument_group('live (through the ROS node)')
    live.add_argument('--live', action='store_true', help='replay through a running node')
    live.add_argument('--listen', action='store_true',
                      help='only listen while `ros2 bag play BAG` publishes the images')
    live.add_argument('--start-node', action='store_true',
                      help='with --live: start the node (first --model) on a private domain')
    live.add_argument('--rate-scale', type=float, default=LiveOptions.rate_scale,
                      help='replay speed as a multiple of the recorded rate '
                      f'(default: {LiveOptions.rate_scale:g})')
    live.add_argument('--max-in-flight', type=int, default=LiveOptions.max_in_flight,
                      help='pace the replay to the node: publish a frame only when fewer than '
                      'N frames await their mask (default 0: strict recorded timing)')
    live.add_argument('--mask-topic', default=LiveOptions.mask_topic,
                      help=f'the node output (default: {DEFAULT_MASK_TOPIC})')
    live.add_argument('--connect-timeout', type=float, default=LiveOptions.connect_timeout_s,
                      help='seconds to wait for the node '
                      f'(default: {LiveOptions.connect_timeout_s:g})')
    live.add_argument('--drain', type=float, default=LiveOptions.drain_s,
                      help='seconds to wait for masks after the last frame '
                      f'(default: {LiveOptions.drain_s:g})')
    gate = parser.add_argument_group('accept / reject (exit code 3 when a check fails)')
    gate.add_argument('--min-agreement', type=float, metavar='MIOU',
                      help='every model after the first must reach this agreement mIoU (0..1) '
                      'against the first, e.g. 0.95 for an fp16 engine against fp32')
    gate.add_argument('--min-miou', type=float, metavar='MIOU',
                      help='every model must reach this mIoU (0..1) on the ground truth')
    out = parser.add_argument_group('output')
    out.add_argument('--output', '-o', help='report folder (default: ./bisenet_eval_<bag>)')
    out.add_argument('--samples', type=int, default=LiveOptions.samples,
                     help='overlay images to write')
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


def _default_model() -> str:
    """The packaged model's path; FileNotFoundError when it is not installed."""
    from ..resources import default_model_path
    default = default_model_path()
    if not default.is_file():
        raise FileNotFoundError(f'the default model {default} is not installed; pass '
                                '--model PATH')
    return str(default)


def _models(args: argparse.Namespace) -> List[str]:
    """Model paths; one model with several backends becomes one entry per backend."""
    paths = list(args.model) or [_default_model()]
    if len(paths) == 1 and len(args.backend) > 1:
        paths = paths * len(args.backend)
    return paths


def open_frames(source: BagSource) -> Any:
    """(reader, BagFrames, label topic) for ``source``."""
    from ..bags.reader import BagReader
    from ..evaluation.bag_frames import BagFrames, resolve_image_topic, resolve_label_topic
    reader = BagReader(source.path, backend=source.reader)
    image_topic = resolve_image_topic(reader, source.image_topic)
    label_topic = resolve_label_topic(reader, source.label_topic) if source.labels else None
    frames = BagFrames(reader, image_topic, label_topic, window_s=source.match_window_s,
                       tolerance_s=source.stamp_tolerance_ms / 1e3, limit=source.limit)
    return reader, frames, label_topic


def output_dir(output: Optional[str], bag: str) -> Path:
    """``output`` or ``./bisenet_eval_<bag name>``."""
    return Path(output or f'bisenet_eval_{Path(bag).resolve().name}')


def source_info(bag: str, reader: Any, frames: Any, mode: str) -> Dict[str, Any]:
    """The report's ``source`` section."""
    return {'bag': str(Path(bag).resolve()), 'mode': mode, 'reader': reader.backend_name,
            'image_topic': frames.image_topic, 'label_topic': frames.label_topic}


def _predictors(args: argparse.Namespace) -> Any:
    """One Segmenter-backed predictor per model/backend/precision, and their label set."""
    from ..evaluation.offline import NamedPredictor, segmenter_predictor, smoothed_predictor
    from ..inference import Segmenter
    from ..inference.threads import set_torch_threads
    set_torch_threads(args.threads)
    paths = _models(args)
    backends = _per_model(args.backend, len(paths), 'auto', '--backend')
    precisions = _per_model(args.precision, len(paths), 'auto', '--precision')
    predictors, label_set = [], None
    for path, backend, precision in zip(paths, backends, precisions):
        seg = Segmenter(path, backend=backend, input_size=args.input_size, device=args.device,
                        precision=precision, label_set=args.label_set, threads=args.threads)
        if label_set is None:
            label_set = seg.label_set
        elif seg.label_set.num_classes != label_set.num_classes:
            raise ValueError(f'{path} predicts {seg.label_set.num_classes} classes but '
                             f'{paths[0]} predicts {label_set.num_classes}')
        chosen = seg.choice.precision  # what ran ('auto' resolved, as the node would)
        details = {'model': str(Path(path).resolve()), 'backend': seg.backend_name,
                   'precision': chosen, 'precision_requested': precision,
                   'device': args.device}
        name = f'{Path(path).name} [{seg.backend_name}, {chosen}]'
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
    source = BagSource.from_args(args)
    reader, frames, label_topic = open_frames(source)  # a bad bag fails before models load
    try:
        predictors, label_set = _predictors(args)
    except BaseException:
        reader.close()
        raise
    with reader, progress_bar(frames.total, 'eval-bag', args.progress) as bar:
        every = max(1, (frames.total or 1) // max(1, args.samples)) if args.samples else 0
        evaluation = evaluate_frames(frames, predictors, label_set, sample_every=every,
                                     max_samples=args.samples, progress=bar.update)
        evaluation.info.source = source_info(source.path, reader, frames, 'offline')
        evaluation.info.frames = frame_accounting(frames.counts, label_topic is not None)
    if frames.counts.images == 0:
        raise ValueError(f'bag {args.bag}: no images on {frames.image_topic}')
    return write_outputs(evaluation, output_dir(args.output, source.path),
                         plots=not args.no_plots)


def _live_label_set(label_set: Optional[str], model: Optional[str]) -> Any:
    from ..labels import load_label_set
    if label_set:
        return load_label_set(label_set)
    if model and Path(model).suffix in ('.pt', '.pth'):
        from ..model.checkpoint import read_checkpoint
        info = read_checkpoint(model)[1]
        if info.label_set is not None:
            return info.label_set
    LOG.warning('no --label-set and no label set in the model: assuming camvid')
    return load_label_set('camvid')


def run_live(options: LiveOptions, node_params: Optional[Dict[str, Any]] = None
             ) -> Dict[str, Any]:
    """Replay (or listen) through the node; ``start_node`` runs one on a private domain.

    ``node_params`` are extra parameters of the started node. Returns :func:`write_outputs`'s
    result (report, summary lines, paths, images).
    """
    from ..evaluation.live import evaluate_record, outgoing_frames
    from ..evaluation.offline import frame_accounting
    from ..evaluation.outputs import write_outputs
    from ..evaluation.progress import progress_bar
    from ..resources import large_message_profile
    from ..ros.clients import replay as ros_replay
    source = options.source
    model = options.model or (_default_model() if options.start_node else None)
    label_set = _live_label_set(options.label_set, model)
    reader, bag_frames, label_topic = open_frames(source)
    with reader:
        frames = list(bag_frames)  # a live replay needs every frame ready on time
    if not frames:
        raise ValueError(f'bag {source.path}: no images on {bag_frames.image_topic}')
    out_dir = output_dir(options.output, source.path)
    profile = large_message_profile()
    if profile is not None:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    image_topic = source.image_topic.removesuffix('/compressed')
    domain_id, node = None, None
    if options.start_node and model is not None:
        from ..ros.clients.node_process import NodeProcess
        domain_id = random.randint(120, 199)  # private: a robot's own camera cannot interfere
        params: Dict[str, Any] = {
            'model_path': str(Path(model).resolve()), 'image_topics': [image_topic],
            'publish_color_mask': False, 'publish_overlay': False, 'device': options.device,
            **(node_params or {})}
        if options.backend:
            params['backend'] = options.backend
        if options.precision:
            params['precision'] = options.precision
        if options.threads:
            params['threads'] = options.threads
        if options.input_size:
            params['input_size'] = list(options.input_size)
        node = NodeProcess(params, domain_id, fastdds_profile=str(profile) if profile else None,
                           log_path=out_dir / 'node.log')
    try:
        if options.listen:
            record = ros_replay.listen(image_topic, options.mask_topic, domain_id=domain_id)
        else:
            with progress_bar(len(frames), 'replay', options.progress) as bar:
                record = ros_replay.replay(
                    outgoing_frames(frames), image_topic, options.mask_topic,
                    options.rate_scale, connect_timeout_s=options.connect_timeout_s,
                    drain_s=options.drain_s, on_sent=bar.update, domain_id=domain_id,
                    max_in_flight=options.max_in_flight)
    except ros_replay.ReplayError as exc:
        if node is not None:
            tail = '\n'.join(node.log().splitlines()[-15:])
            raise ros_replay.ReplayError(f'{exc}\nnode log ({node.log_path}):\n{tail}') from exc
        raise
    finally:
        if node is not None:
            node.stop()
    details: Dict[str, Any] = {
        'node': 'started by eval-bag' if node else 'running', 'mask_topic': options.mask_topic,
        'rate_scale': options.rate_scale, 'max_in_flight': options.max_in_flight}
    if model:
        details['model'] = str(Path(model).resolve())
    every = max(1, len(frames) // max(1, options.samples)) if options.samples else 0
    evaluation = evaluate_record(frames, record, label_set, 'segmentation_node', details,
                                 listen_mode=options.listen, sample_every=every,
                                 max_samples=options.samples)
    evaluation.info.source = source_info(source.path, reader, bag_frames,
                                         'listen' if options.listen else 'live replay')
    evaluation.info.frames = {**frame_accounting(bag_frames.counts, label_topic is not None),
                              **evaluation.info.frames}
    return write_outputs(evaluation, out_dir, plots=options.plots)


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
        result = run_live(LiveOptions.from_args(args))
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
