"""``bisenet benchmark``: latency, FPS, pre/post cost, GFLOPs and agreement per backend.

Every configuration (backend:precision; ``openvino:int8+bf16`` runs the float layers of the
int8 graph in bf16; ``auto:auto`` is what ``precision='auto'`` picks here, printed with its
reason) runs through the real :class:`Segmenter` pipeline on
natural frames, interleaved round by round so that load changes on a shared machine hit all
configurations alike. Agreement is the share of pixels whose class equals PyTorch fp32's.

Examples::

    bisenet benchmark --model camvid.pt                       # CPU configs, 512x1024 + 256x512
    bisenet benchmark --configs onnxruntime:fp32,onnxruntime:int8 --sizes 360x480 -n 20
    bisenet benchmark --configs torch:fp32,openvino:int8,openvino:int8+bf16 --sizes 512x1024
    bisenet benchmark --configs torch:fp16,tensorrt:fp16,tensorrt:int8 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from ..user_files import write_atomic
from .segment_image import parse_size, resolve_model

CPU_CONFIGS = ('torch:fp32,torch:bf16,onnxruntime:fp32,onnxruntime:int8,openvino:fp32,'
               'openvino:bf16,openvino:int8,auto:auto')
#: Frames taken for int8 calibration beside the agreement frames, without --calibration-images.
CALIBRATION_FRAMES = 12
GPU_CONFIGS = ('torch:fp32,torch:fp16,onnxruntime:fp32,tensorrt:fp32,tensorrt:fp16,tensorrt:int8,'
               'auto:auto')
#: Goal of the real-time issue: pre- plus post-processing at most this share of inference.
PRE_POST_GOAL = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('--model', help='checkpoint (default: the packaged CamVid model)')
    parser.add_argument('--configs', help=f'backend:precision list (CPU default: {CPU_CONFIGS})')
    parser.add_argument('--sizes', default='512x1024,256x512', help='HxW list')
    parser.add_argument('-n', '--iterations', type=int, default=5, help='timed rounds (5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds (1)')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (2)')
    parser.add_argument('--gap', type=float, default=0.2,
                        help='idle seconds before each timed call (0.2)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda[:N]' or 'gpu[:N]' (OpenVINO GPU)")
    parser.add_argument('--images', nargs='*', help='natural frames for agreement and int8 '
                        'calibration (default: the packaged demo frames)')
    parser.add_argument('--agreement-images', type=int, default=4,
                        help='frames used for the agreement column (4)')
    parser.add_argument('--calibration-images', help='int8 calibration folder (default: '
                        f'{CALIBRATION_FRAMES} other frames of --images)')
    parser.add_argument('--label-set', help="label set name or YAML (default: the model's)")
    parser.add_argument('--profile', action='store_true', help='print the per-layer-type time '
                        'of each OpenVINO config (its PERF_COUNT) at every size')
    parser.add_argument('--json', default='bench_backends.json', help='JSON result file')


def count_gflops(module: Any, size: Tuple[int, int]) -> float:
    """Forward GFLOPs (multiply-add = 2 FLOPs) of one ``size`` image, by torch's counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, 3, size[0], size[1]))
    return counter.get_total_flops() / 1e9


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..export.verify import sample_images
    from ..inference import Segmenter
    from ..inference.threads import set_torch_threads
    from ..model.checkpoint import load_model
    model_path = resolve_model(args.model)
    module = load_model(model_path, label_set=args.label_set)
    set_torch_threads(args.threads)
    configs = [c.split(':') for c in (args.configs or (
        GPU_CONFIGS if args.device.startswith('cuda') else CPU_CONFIGS)).split(',')]
    sizes = [parse_size(s) for s in args.sizes.split(',')]
    count = max(1, args.agreement_images)
    pool = sample_images(args.images, limit=count + CALIBRATION_FRAMES)
    frames = pool[:count]
    # int8 is calibrated on other frames than the agreement is measured on, unless told.
    calibration = args.calibration_images or pool[count:] or frames
    report: Dict[str, Any] = {'model': str(model_path), 'machine': _machine(),
                              'threads': args.threads, 'iterations': args.iterations,
                              'results': []}
    for size in sizes:
        gflops = count_gflops(module, size)
        images = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
                  for f in frames]
        segs, rows = {}, {}
        for backend, precision in configs:
            name = f'{backend}:{precision}'
            precision, _, float_part = precision.partition('+')
            options: Dict[str, Any] = {'calibration_images': calibration} \
                if precision in ('int8', 'auto') else {}
            if float_part:
                options['float_precision'] = float_part
            if args.profile and backend == 'openvino':
                options['profile'] = True
            try:
                segs[name] = Segmenter(module, backend=backend, input_size=size,
                                       device=args.device, precision=precision,
                                       threads=args.threads, **options)
            except (RuntimeError, ValueError) as exc:
                print(f'{name} at {size[0]}x{size[1]}: skipped ({exc})')
                continue
            if precision == 'auto':
                print(f'{name} at {size[0]}x{size[1]}: {segs[name].choice.summary()}')
        reference = {i: r.labels for i, r in enumerate(
            segs['torch:fp32'].segment_batch(images))} if 'torch:fp32' in segs else None
        timings: Dict[str, List[Dict[str, float]]] = {n: [] for n in segs}
        for round_index in range(args.warmup + args.iterations):
            for name, seg in segs.items():  # interleaved: every config sees the same load
                # Idle first: the previous runtime's worker threads spin for a while after a
                # call, and would otherwise take the cores from this one's first milliseconds.
                time.sleep(args.gap)
                res = seg.segment(images[round_index % len(images)])
                if round_index >= args.warmup:
                    timings[name].append(res.timings)
        for name, seg in segs.items():
            agreement = None
            if reference is not None:
                agreement = float(np.mean([(r.labels == reference[i]).mean() for i, r in
                                           enumerate(seg.segment_batch(images))]))
            rows[name] = _summarise(name, size, timings[name], gflops, agreement)
            if args.profile and hasattr(seg.backend, 'profile'):
                seg.segment(images[0])
                layers = seg.backend.profile(top=8)
                rows[name]['profile_ms'] = layers
                print(f'{name} at {size[0]}x{size[1]}, ms per layer type (one call): ' +
                      ', '.join(f'{k} {v:.1f}' for k, v in layers.items()))
            seg.close()
        base = rows.get('torch:fp32')
        for row in rows.values():
            row['speedup_vs_torch_fp32'] = (base['median_ms'] / row['median_ms']
                                            if base else None)
            report['results'].append(row)
    report['goals'] = evaluate_goals(report['results'])
    print(format_table(report['results']))
    for goal in report['goals']:
        print(f"goal: {goal['goal']}: {goal['measured']} -> "
              f"{'MET' if goal['met'] else 'NOT MET'}")
    write_atomic(args.json, json.dumps(report, indent=1))
    print(f'wrote {args.json}')
    return 0


def _summarise(name: str, size: Tuple[int, int], timings: List[Dict[str, float]],
               gflops: float, agreement: Any) -> Dict[str, Any]:
    infer = np.array([t['inference'] for t in timings]) * 1000
    pre = float(np.median([t['preprocess'] for t in timings]) * 1000)
    post = float(np.median([t['postprocess'] for t in timings]) * 1000)
    median = float(np.median(infer))
    return {'config': name, 'size': f'{size[0]}x{size[1]}', 'median_ms': median,
            'p95_ms': float(np.percentile(infer, 95)), 'fps': 1000.0 / (median + pre + post),
            'preprocess_ms': pre, 'postprocess_ms': post,
            'pre_post_share': (pre + post) / median, 'gflops': gflops,
            'achieved_gflop_s': gflops / (median / 1000), 'agreement': agreement,
            'samples': len(timings)}


def evaluate_goals(rows: List[Dict[str, Any]], size: str = '512x1024',
                   bound: float = 0.99) -> List[Dict[str, Any]]:
    """The issue's speed goals, from rows measured in one run."""
    at = {r['config']: r for r in rows if r['size'] == size}
    goals: List[Dict[str, Any]] = []
    if 'torch:fp32' not in at:
        return goals
    if 'onnxruntime:fp32' in at:
        ratio = at['onnxruntime:fp32']['speedup_vs_torch_fp32']
        goals.append({'goal': f'ONNX Runtime fp32 >= 2x torch eager fp32 at {size}',
                      'measured': f'{ratio:.2f}x', 'met': ratio >= 2.0})
    eligible = [r for n, r in at.items() if n != 'torch:fp32' and
                r['agreement'] is not None and r['agreement'] >= bound]
    if eligible:
        best = max(eligible, key=lambda r: r['speedup_vs_torch_fp32'])
        ratio = best['speedup_vs_torch_fp32']
        goals.append({'goal': f'fastest CPU path meeting {bound:.0%} agreement >= 5x torch '
                      f'eager fp32 at {size}', 'measured': f"{best['config']} {ratio:.2f}x "
                      f"(agreement {best['agreement']:.4f})", 'met': ratio >= 5.0})
        share = best['pre_post_share']
        goals.append({'goal': f'preprocess + postprocess <= {PRE_POST_GOAL:.0%} of inference at '
                      f"{size} ({best['config']})", 'measured': f"{share:.1%} (pre "
                      f"{best['preprocess_ms']:.2f} ms + post {best['postprocess_ms']:.2f} ms vs "
                      f"inference {best['median_ms']:.1f} ms)", 'met': share <= PRE_POST_GOAL})
    return goals


def format_table(rows: List[Dict[str, Any]]) -> str:
    """Markdown table of the rows."""
    head = ('| size | config | median ms | p95 ms | FPS | pre ms | post ms | pre+post / infer '
            '| GFLOPs | GFLOP/s | agreement | vs torch fp32 |')
    lines = [head, '|' + '---|' * 12]
    for r in rows:
        agreement = '-' if r['agreement'] is None else f"{100 * r['agreement']:.2f}%"
        speed = '-' if r['speedup_vs_torch_fp32'] is None else \
            f"{r['speedup_vs_torch_fp32']:.2f}x"
        lines.append(f"| {r['size']} | {r['config']} | {r['median_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['fps']:.2f} | {r['preprocess_ms']:.2f} | "
                     f"{r['postprocess_ms']:.2f} | {100 * r['pre_post_share']:.1f}% | "
                     f"{r['gflops']:.1f} | "
                     f"{r['achieved_gflop_s']:.1f} | {agreement} | {speed} |")
    return '\n'.join(lines)


def _machine() -> Dict[str, Any]:
    import os
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as handle:
            cpu = next(line.split(':', 1)[1].strip() for line in handle
                       if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'python': platform.python_version(),
            'time': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}
