"""``bisenet segment``: segment image files; write label, colour and overlay PNGs.

For each input ``<stem>.<ext>`` the output folder gets ``<stem>_labels.png`` (class ids, 8-bit,
16-bit beyond 255 ids), ``<stem>_color.png`` (label-set palette) and ``<stem>_overlay.png``.

Examples::

    bisenet segment frame.jpg                         # packaged CamVid model, auto backend
    bisenet segment imgs/ --model city.pth --backend torch --output-dir out/
    bisenet segment a.png b.png --model m.onnx --confidence-threshold 0.5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('images', nargs='+', help='image files or folders of images')
    parser.add_argument('--model', help='checkpoint (.pt/.pth), .onnx, OpenVINO .xml or TensorRT '
                        'engine '
                        '(default: the packaged CamVid model)')
    parser.add_argument('--output-dir', default='segmentation', help='default: ./segmentation')
    add_engine_arguments(parser)
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity (0.5)')
    parser.add_argument('--confidence-threshold', type=float, default=0.0,
                        help='pixels whose max softmax is below this get the ignore id (0: off)')


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the tools that build a :class:`Segmenter`."""
    from ..inference.backends import BACKENDS, PRECISIONS
    parser.add_argument('--backend', default='auto', choices=BACKENDS)
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda[:N]', 'gpu[:N]' (OpenVINO GPU) or 'auto'")
    parser.add_argument('--precision', default='fp32', choices=PRECISIONS)
    parser.add_argument('--input-size', type=parse_size,
                        help='HxW to resize to for inference (default: native size)')
    parser.add_argument('--label-set', help="label set name or YAML (default: the model's)")
    parser.add_argument('--threads', type=int, help='CPU threads for the runtime')


def parse_size(text: str):
    """``'512x1024'`` -> ``(512, 1024)``."""
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x1024, got '{text}'")
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'size must be positive, got {text}')
    return height, width


def resolve_model(model: Optional[str] = None) -> Path:
    """The ``--model`` path, or the packaged default; ``FileNotFoundError`` saying which."""
    if model:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f'--model {path}: no such file')
        return path
    from ..resources import default_model_path
    path = default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f'no --model given and the packaged default model {path} is '
                                'not there (this checkout predates it); pass --model PATH')
    return path


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..image_files import collect_images
    from ..inference import Segmenter
    from ..inference.threads import set_torch_threads
    set_torch_threads(args.threads)
    model = resolve_model(args.model)
    files = collect_images(args.images)
    if not files:
        raise FileNotFoundError(f'no image files in {args.images}')
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Segmenter(model, backend=args.backend, input_size=args.input_size,
                   device=args.device, precision=args.precision, label_set=args.label_set,
                   threads=args.threads) as seg:
        print(f'model {model}: backend {seg.backend.describe()}, label set '
              f'{seg.label_set.name}')
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f'image {path}: cannot be decoded')
            res = seg.segment(image, bgr=True, color=True, overlay=True,
                              overlay_alpha=args.alpha,
                              confidence_threshold=args.confidence_threshold)
            stem = out_dir / path.stem
            ok = cv2.imwrite(f'{stem}_labels.png', res.labels)
            ok &= cv2.imwrite(f'{stem}_color.png', cv2.cvtColor(res.color, cv2.COLOR_RGB2BGR))
            ok &= cv2.imwrite(f'{stem}_overlay.png', res.overlay)
            if not ok:
                raise RuntimeError(f'cannot write PNGs for {path} into {out_dir}')
            ms = {k: 1000 * v for k, v in res.timings.items()}
            classes = [int(v) for v in np.unique(res.labels)]
            print(f"{path}: {image.shape[1]}x{image.shape[0]}, classes {classes}, pre "
                  f"{ms['preprocess']:.1f} ms, inference {ms['inference']:.1f} ms, post "
                  f"{ms['postprocess']:.1f} ms -> {stem}_*.png")
    return 0
