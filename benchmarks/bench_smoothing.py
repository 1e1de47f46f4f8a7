"""Temporal smoothing on a labelled bag: mIoU and flicker per smoothing weight and frame stride,
plus the cost of the per-frame steps the node adds (smoothing, group mask).

The network runs once per frame; every (stride, weight) pair is then replayed from its logits.
A stride ``s`` keeps every s-th frame, as a camera ``s`` times slower (or a scene moving ``s``
times faster between frames) would see; each of the ``s`` phases is its own stream, so every
frame is scored once per pair. ``--still K``: a camera that does not move, K of the bag's
frames each shown ``--repeats`` times with fresh Gaussian sensor noise (``--noise``, in grey
levels), so that all its flicker is noise. Usage (the tables of ``docs/smoothing.md``)::

    bisenet make-bag val15 --dataset camvid --root ../shared/datasets/camvid --split val \\
        --rate 15
    python benchmarks/bench_smoothing.py val15 --strides 1 2 4 8 --weights 1 0.7 0.5 0.3
    python benchmarks/bench_smoothing.py val15 --strides --still 3 --repeats 10
    python benchmarks/bench_smoothing.py --timing-only      # the per-frame costs alone
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Dict, List, Tuple

import numpy as np

from bisenet_ros.cpu_features import cpu_model_name


def measure_quality(args: argparse.Namespace) -> Dict:
    from bisenet_ros.bags.reader import BagReader
    from bisenet_ros.evaluation.bag_frames import BagFrames
    from bisenet_ros.evaluation.offline import segmenter_logits
    from bisenet_ros.evaluation.stream_eval import ModelStats
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.inference.postprocess import resize_labels
    from bisenet_ros.inference.threads import set_torch_threads
    from bisenet_ros.resources import default_model_path
    from bisenet_ros.temporal_smoothing import labels_and_confidence, softmax, TemporalSmoother
    set_torch_threads(args.threads)
    seg = Segmenter(args.model or str(default_model_path()), backend=args.backend,
                    threads=args.threads)
    label_set = seg.label_set
    streams: Dict[Tuple[int, float, int], Tuple[TemporalSmoother, ModelStats]] = {}
    for stride in args.strides:
        for weight in args.weights:
            for phase in range(stride):
                streams[(stride, weight, phase)] = (TemporalSmoother(weight, args.max_gap),
                                                    ModelStats('', label_set))
    seconds = []
    with BagReader(args.bag) as reader:
        frames = BagFrames(reader, args.image_topic, args.label_topic)
        count = reader.topics[args.image_topic].count
        for index, frame in enumerate(frames if streams else ()):
            start = time.perf_counter()
            probabilities = softmax(segmenter_logits(seg, frame.image))
            seconds.append(time.perf_counter() - start)
            for (stride, weight, phase), (smoother, stats) in streams.items():
                if index % stride != phase:
                    continue
                average = smoother.update(probabilities, frame.stamp_ns, frame.frame_id)
                labels = resize_labels(labels_and_confidence(average, label_set.ignore_index)[0],
                                       frame.image.shape[:2])
                stats.add(labels, frame.ground_truth)
    rows = []
    if args.still:
        rows += measure_still(args, seg, count)
    for stride in args.strides:
        for weight in args.weights:
            parts = [streams[(stride, weight, p)][1] for p in range(stride)]
            total = parts[0].confusion
            flips: List[float] = list(parts[0].temporal.flip_shares)
            for part in parts[1:]:
                total.merge(part.confusion)
                flips += part.temporal.flip_shares
            rows.append({'stride': stride, 'rate_hz': args.rate / stride, 'weight': weight,
                         'miou': total.scores().miou,
                         'pixel_accuracy': total.scores().pixel_accuracy,
                         'flicker': float(np.mean(flips)) if flips else None,
                         'pairs': len(flips)})
    return {'bag': args.bag, 'frames': count, 'model': seg.backend.describe(),
            'network_seconds_mean': float(np.mean(seconds)) if seconds else None,
            'rows': rows}


def measure_still(args: argparse.Namespace, seg, frames_seen: int) -> List[Dict]:
    """A still camera: ``args.still`` frames spread over the bag, each repeated with noise."""
    from bisenet_ros.bags.reader import BagReader
    from bisenet_ros.evaluation.bag_frames import BagFrames
    from bisenet_ros.evaluation.offline import segmenter_logits
    from bisenet_ros.evaluation.stream_eval import ModelStats
    from bisenet_ros.inference.postprocess import resize_labels
    from bisenet_ros.temporal_smoothing import labels_and_confidence, softmax, TemporalSmoother
    label_set = seg.label_set
    chosen = set(np.linspace(0, frames_seen - 1, args.still).round().astype(int).tolist())
    stats = {w: ModelStats('', label_set) for w in args.weights}
    flips: Dict[float, List[float]] = {w: [] for w in args.weights}
    rng = np.random.default_rng(0)
    with BagReader(args.bag) as reader:
        for index, frame in enumerate(BagFrames(reader, args.image_topic, args.label_topic)):
            if index not in chosen:
                continue
            smoothers = {w: TemporalSmoother(w, args.max_gap) for w in args.weights}
            runs = {w: ModelStats('', label_set) for w in args.weights}
            for repeat in range(args.repeats):
                noise = rng.normal(0.0, args.noise, frame.image.shape)
                image = np.clip(frame.image + noise, 0, 255).astype(np.uint8)
                probabilities = softmax(segmenter_logits(seg, image))
                stamp = frame.stamp_ns + repeat * int(1e9 / args.rate)
                for weight, smoother in smoothers.items():
                    average = smoother.update(probabilities, stamp, f'still{index}')
                    labels = resize_labels(
                        labels_and_confidence(average, label_set.ignore_index)[0],
                        image.shape[:2])
                    runs[weight].add(labels, frame.ground_truth)
            for weight, run in runs.items():
                stats[weight].confusion.merge(run.confusion)
                flips[weight] += run.temporal.flip_shares
    return [{'stride': 'still', 'rate_hz': args.rate, 'weight': w,
             'miou': stats[w].confusion.scores().miou,
             'pixel_accuracy': stats[w].confusion.scores().pixel_accuracy,
             'flicker': float(np.mean(flips[w])), 'pairs': len(flips[w])}
            for w in args.weights]


def measure_timing(height: int = 480, width: int = 640, classes: int = 11,
                   repeat: int = 50) -> Dict[str, float]:
    """Median milliseconds of the node's extra steps on one ``height x width`` frame."""
    from bisenet_ros.class_groups import load_class_groups
    from bisenet_ros.labels import load_label_set
    from bisenet_ros.temporal_smoothing import labels_and_confidence, softmax, TemporalSmoother
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(classes, height, width)).astype(np.float32)
    labels = rng.integers(0, classes + 1, (height, width)).astype(np.uint8)
    confidence = rng.random((height, width), dtype=np.float32)
    groups = load_class_groups('camvid_nav2', load_label_set('camvid'))
    smoother = TemporalSmoother(0.5)
    probabilities = softmax(logits)
    smoother.update(probabilities, 0, 'cam')

    def median_ms(step) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return 1e3 * float(np.median(times))
    return {'group_ids (per-class thresholds)': median_ms(lambda: groups.group_ids(labels,
                                                                                   confidence)),
            'softmax': median_ms(lambda: softmax(logits)),
            'smoother.update (average)': median_ms(lambda: smoother.update(probabilities, 1,
                                                                           'cam')),
            'labels_and_confidence': median_ms(lambda: labels_and_confidence(probabilities))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('bag', nargs='?', help='labelled bag (bisenet make-bag)')
    parser.add_argument('--rate', type=float, default=15.0, help='the bag\'s frame rate (Hz)')
    parser.add_argument('--strides', type=int, nargs='*', default=[1, 2, 4],
                        help='frame strides of the moving camera (none: --still only)')
    parser.add_argument('--weights', type=float, nargs='+', default=[1.0, 0.7, 0.5])
    parser.add_argument('--max-gap', type=float, default=1.0)
    parser.add_argument('--still', type=int, default=0, help='still-camera frames (0: none)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--noise', type=float, default=4.0, help='sensor noise, grey levels')
    parser.add_argument('--model')
    parser.add_argument('--backend', default='torch')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--image-topic', default='/camera/image_raw')
    parser.add_argument('--label-topic', default='/camera/labels')
    parser.add_argument('--timing-only', action='store_true')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args()
    result: Dict = {'cpu': cpu_model_name()}
    if not args.timing_only:
        if not args.bag:
            parser.error('a bag is needed unless --timing-only')
        result.update(measure_quality(args))
        network = result['network_seconds_mean']
        print(f"{result['frames']} frames, {result['model']}, on {result['cpu']}"
              + (f', network {1e3 * network:.0f} ms/frame' if network else ''))
        print('| stride | camera rate | weight | mIoU | pixel acc. | flicker | pairs |')
        print('| --- | --- | --- | --- | --- | --- | --- |')
        for row in result['rows']:
            print(f"| {row['stride']} | {row['rate_hz']:.2f} Hz | {row['weight']:g} | "
                  f"{100 * row['miou']:.2f}% | {100 * row['pixel_accuracy']:.2f}% | "
                  f"{100 * row['flicker']:.2f}% | {row['pairs']} |")
    result['timing_ms_480x640'] = measure_timing()
    for step, ms in result['timing_ms_480x640'].items():
        print(f'{step}: {ms:.2f} ms (480x640, median)')
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump(result, handle, indent=2)


if __name__ == '__main__':
    main()
