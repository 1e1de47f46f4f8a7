"""Peak memory per network input pixel, per backend, class count and outputs asked for.

Each case runs in its own process: load a random-weight BiSeNet V2 of ``--classes`` classes,
segment once at a small size (the baseline peak RSS), then once at ``--size``; the rise of the
peak RSS divided by the pixels is the figure (B/px) that :data:`bisenet_ros.limits` uses.

    python benchmarks/bench_memory_per_pixel.py --classes 150 --size 1024 --out mem.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys
import tempfile

CASE = r'''
import resource, sys
import numpy as np
from bisenet_ros.inference import Segmenter
model, backend, size, confidence = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1'
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
small = Segmenter(model, backend=backend, input_size=(64, 64), threads=2)
small.segment(np.zeros((64, 64, 3), np.uint8), confidence=confidence)
del small
base = peak()
seg = Segmenter(model, backend=backend, input_size=(size, size), threads=2)
seg.segment(np.zeros((size, size, 3), np.uint8), confidence=confidence)
print(base, peak())
'''


def _checkpoint(folder: Path, classes: int) -> Path:
    import torch
    from bisenet_ros.labels import LabelSet
    from bisenet_ros.model import build_model, save_checkpoint
    path = folder / f'random{classes}.pt'
    torch.manual_seed(0)
    save_checkpoint(path, build_model('bisenetv2', num_classes=classes).eval(),
                    label_set=LabelSet.generic(classes))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--classes', type=int, default=150)
    parser.add_argument('--size', type=int, default=1024)
    parser.add_argument('--backends', nargs='+', default=['torch', 'onnxruntime', 'openvino'])
    parser.add_argument('--out', type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = _checkpoint(Path(tmp), args.classes)
        for backend in args.backends:
            for confidence in (False, True):
                run = subprocess.run([sys.executable, '-c', CASE, str(model), backend,
                                      str(args.size), '1' if confidence else '0'],
                                     capture_output=True, text=True)
                if run.returncode:
                    rows.append({'backend': backend, 'confidence': confidence,
                                 'error': run.stderr.strip().splitlines()[-1:]})
                    continue
                base, peak = (int(v) for v in run.stdout.split()[-2:])
                rows.append({'backend': backend, 'classes': args.classes, 'size': args.size,
                             'confidence': confidence,
                             'bytes_per_pixel': round((peak - base) / args.size ** 2)})
                print(rows[-1], flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
