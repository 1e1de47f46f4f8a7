"""GPU readiness numbers: torch fp32/fp16/bf16 (eager, channels_last, CUDA graph, optionally
torch.compile) at 512x1024 and 360x480 with latency, FPS and label agreement with fp32; what
``precision='auto'`` picks on CUDA; and TensorRT fp16 wherever ``tensorrt`` imports.

Run by ``benchmarks/gpu_check.sh`` (which runs the CUDA tests first). Without CUDA every GPU part
says ``no CUDA`` and the script exits 0, so it can be checked on a CPU machine.

    python benchmarks/gpu_check.py --sizes 512x1024,360x480 -n 50 --json gpu_check.json
"""

import argparse
import json
import statistics
import time
from typing import Any, Callable, Dict, List, Tuple


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='512x1024,360x480', help='HxW list')
    parser.add_argument('-n', '--iterations', type=int, default=50, help='timed calls (50)')
    parser.add_argument('--warmup', type=int, default=10, help='untimed calls (10)')
    parser.add_argument('--compile', action='store_true',
                        help='also torch.compile each precision (minutes per configuration)')
    parser.add_argument('--json', default='gpu_check.json', help='result file')
    return parser.parse_args()


def time_cuda(torch: Any, run: Callable[[], Any], warmup: int, iterations: int) -> List[float]:
    """Milliseconds per call, timed with CUDA events after ``warmup`` calls."""
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def torch_variants(torch: Any, module: Any, precision: str, x: Any,
                   use_compile: bool) -> Dict[str, Callable[[], Any]]:
    """Callables returning labels on the GPU for one precision, one per execution variant."""
    import copy
    dtype = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    variants: Dict[str, Callable[[], Any]] = {}
    layouts = (('eager', torch.contiguous_format), ('channels_last', torch.channels_last))
    for name, layout in layouts:
        net = copy.deepcopy(module).cuda().eval().to(memory_format=layout)
        inp = x.contiguous(memory_format=layout)

        def run(net: Any = net, inp: Any = inp) -> Any:
            with torch.inference_mode(), torch.autocast('cuda', dtype=dtype,
                                                        enabled=dtype is not None):
                return net(inp).argmax(1)
        variants[name] = run
    best_layout = torch.channels_last
    net = copy.deepcopy(module).cuda().eval().to(memory_format=best_layout)
    static = x.contiguous(memory_format=best_layout).clone()
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                net(static)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            static_out = net(static).argmax(1)
    variants['cuda_graph'] = lambda: (graph.replay(), static_out)[1]
    if use_compile:
        compiled = torch.compile(copy.deepcopy(module).cuda().eval(), mode='max-autotune')

        def run_compiled() -> Any:
            with torch.inference_mode(), torch.autocast('cuda', dtype=dtype,
                                                        enabled=dtype is not None):
                return compiled(x).argmax(1)
        variants['compile'] = run_compiled
    return variants


def row(config: str, size: Tuple[int, int], times: List[float], agreement: Any) -> Dict[str, Any]:
    median = statistics.median(times)
    return {'config': config, 'size': f'{size[0]}x{size[1]}', 'median_ms': median,
            'p95_ms': sorted(times)[int(0.95 * (len(times) - 1))], 'fps': 1000.0 / median,
            'agreement': agreement}


def main() -> int:
    args = parse_args()
    report: Dict[str, Any] = {'time': time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
                              'results': [], 'notes': []}
    try:
        import torch
    except ImportError as exc:
        print(f'no CUDA: torch is not importable ({exc}); GPU benchmarks skipped')
        return 0
    if not torch.cuda.is_available():
        print(f'no CUDA: torch {torch.__version__} sees no GPU; GPU benchmarks skipped')
        report['notes'].append('no CUDA')
    else:
        report['gpu'] = torch.cuda.get_device_name(0)
        report['torch'] = torch.__version__
        print(f'GPU: {report["gpu"]}, torch {torch.__version__}')
        run_torch(torch, args, report)
    run_tensorrt(args, report)
    with open(args.json, 'w') as handle:
        json.dump(report, handle, indent=1)
    print(f'wrote {args.json}')
    return 0


def frames_at(size: Tuple[int, int]) -> Any:
    """The packaged demo frames as one normalised batch at ``size``."""
    from bisenet_ros.export.verify import sample_images
    from bisenet_ros.labels import IMAGENET_MEAN, IMAGENET_STD
    from bisenet_ros.preprocess import preprocess
    return preprocess(sample_images(None, 4), IMAGENET_MEAN, IMAGENET_STD, bgr=True,
                      input_size=size)[0]


def run_torch(torch: Any, args: argparse.Namespace, report: Dict[str, Any]) -> None:
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.model.checkpoint import load_model
    from bisenet_ros.resources import default_model_path
    module = load_model(default_model_path())
    precisions = ['fp32', 'fp16'] + (['bf16'] if torch.cuda.is_bf16_supported() else [])
    for text in args.sizes.split(','):
        size = tuple(int(v) for v in text.lower().split('x'))
        batch = torch.from_numpy(frames_at(size)).cuda()
        single = batch[:1].contiguous()
        with torch.inference_mode():
            reference = module.cuda().eval()(batch).argmax(1)
        for precision in precisions:  # agreement per precision (the variants compute the same)
            labels = torch.stack([_labels_of(torch, module, precision, batch[i:i + 1])
                                  for i in range(batch.shape[0])])
            agreement = float((labels == reference).float().mean())
            for variant, run in torch_variants(torch, module, precision, single,
                                               args.compile).items():
                times = time_cuda(torch, run, args.warmup, args.iterations)
                result = row(f'torch:{precision}:{variant}', size, times, agreement)
                report['results'].append(result)
                print(_line(result), flush=True)
        with Segmenter(module, device='cuda', input_size=size) as seg:
            report['results'].append({'config': 'auto', 'size': text,
                                      'choice': seg.choice.as_dict()})
            print(f'auto at {text}: {seg.choice.summary()}', flush=True)


def _labels_of(torch: Any, module: Any, precision: str, x: Any) -> Any:
    dtype = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}[precision]
    with torch.inference_mode(), torch.autocast('cuda', dtype=dtype, enabled=dtype is not None):
        return module(x).argmax(1)[0]


def run_tensorrt(args: argparse.Namespace, report: Dict[str, Any]) -> None:
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # ImportError, or the registry's stub package refusing to load
        print(f'tensorrt: not importable ({exc}); TensorRT part skipped')
        report['notes'].append('no tensorrt')
        return
    import torch
    if not torch.cuda.is_available():
        print('tensorrt: no CUDA; TensorRT part skipped')
        return
    import numpy as np

    from bisenet_ros.inference import Segmenter
    from bisenet_ros.resources import default_model_path
    for text in args.sizes.split(','):
        size = tuple(int(v) for v in text.lower().split('x'))
        batch = frames_at(size)
        with Segmenter(default_model_path(), backend='torch', device='cuda',
                       precision='fp32') as ref_seg, \
                Segmenter(default_model_path(), backend='tensorrt', device='cuda',
                          precision='fp16', input_size=size) as seg:
            ref = ref_seg.backend.infer(batch, ('labels',))['labels']
            got = np.concatenate([seg.backend.infer(batch[i:i + 1], ('labels',))['labels']
                                  for i in range(len(batch))])
            one = batch[:1]
            times = []
            for i in range(args.warmup + args.iterations):
                start = time.perf_counter()
                seg.backend.infer(one, ('labels',))
                if i >= args.warmup:
                    times.append(1000 * (time.perf_counter() - start))
            result = row('tensorrt:fp16', size, times, float(np.mean(got == ref)))
            report['results'].append(result)
            print(_line(result), flush=True)


def _line(r: Dict[str, Any]) -> str:
    return (f"{r['size']} {r['config']}: median {r['median_ms']:.2f} ms, p95 {r['p95_ms']:.2f} "
            f"ms, {r['fps']:.1f} FPS, agreement with fp32 {100 * r['agreement']:.2f}%")


if __name__ == '__main__':
    raise SystemExit(main())
