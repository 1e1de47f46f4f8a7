"""``bisenet segment``: segment image files; write label, colour and overlay PNGs.

For each input ``<stem>.<ext>`` the output folder gets ``<stem>_labels.png`` (class ids, 8-bit,
16-bit beyond 255 ids), ``<stem>_color.png`` (label-set palette) and ``<stem>_overlay.png``.
Inputs whose stems repeat (``a/x.png b/x.png``, ``x.png x.jpg``) are named after their path
from the folder they share (``a_x``, ``b_x``; ``x_png``, ``x_jpg``), so no output overwrites
another. An image larger than ``--max-input-pixels`` (read from its header, before decoding) or
one that cannot be decoded is reported and skipped; the others are still segmented, and the
exit code is 1.

Examples::

    bisenet segment frame.jpg                         # packaged CamVid model, auto backend
    bisenet segment imgs/ --model city.pth --backend torch -o out/
    bisenet segment a.png b.png --model m.onnx --confidence-threshold 0.5
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..limits import DEFAULT_MAX_INPUT_PIXELS

LOG = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('images', nargs='+', help='image files or folders of images')
    parser.add_argument('--model', help='checkpoint (.pt/.pth), .onnx, OpenVINO .xml or TensorRT '
                        'engine '
                        '(default: the packaged CamVid model)')
    parser.add_argument('-o', '--output', '--output-dir', dest='output_dir',
                        default='segmentation', help='output folder (default: ./segmentation)')
    add_engine_arguments(parser)
    parser.add_argument('--alpha', type=float, default=0.5, help='overlay opacity (0.5)')
    parser.add_argument('--confidence-threshold', type=float, default=0.0,
                        help='pixels whose max softmax is below this get the ignore id (0: off)')
    parser.add_argument('--max-input-pixels', type=parse_pixels,
                        default=DEFAULT_MAX_INPUT_PIXELS,
                        help='larger images (width x height, read from the file header) are '
                        f'skipped before decoding (default {DEFAULT_MAX_INPUT_PIXELS}; '
                        '0: the decoder ceiling; negative values are refused)')


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the tools that build a :class:`Segmenter`."""
    from ..inference.backends import BACKENDS, PRECISION_CHOICES
    parser.add_argument('--backend', default='auto', choices=BACKENDS)
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda[:N]', 'gpu[:N]' (OpenVINO GPU) or 'auto'")
    parser.add_argument('--precision', default='auto', choices=PRECISION_CHOICES)
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
        from ..user_files import check_file
        check_file(model, '--model')  # MissingFileError is a FileNotFoundError
        return Path(model)
    from ..resources import default_model_path
    path = default_model_path()
    if not path.is_file():
        raise FileNotFoundError(f'no --model given and the packaged default model {path} is '
                                'not there (this checkout predates it); pass --model PATH')
    return path


def output_names(files: Sequence[Path]) -> Dict[Path, str]:
    """A distinct output stem per input file: its stem where that is unique, else its path from
    the folder the same-stem files share (``a_x``), with the suffix (``x_png``) if needed."""
    by_stem: Dict[str, List[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    names: Dict[Path, str] = {}
    used = set(by_stem)
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        resolved = [p.resolve() for p in group]
        root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
        for path, full in zip(group, resolved):
            parts = full.relative_to(root).with_suffix('').parts
            name = '_'.join(parts)
            if sum(1 for f in resolved if f.with_suffix('') == full.with_suffix('')) > 1:
                name += '_' + full.suffix.lstrip('.')
            base, n = name, 2
            while name in used and name != stem:
                name, n = f'{base}_{n}', n + 1
            used.add(name)
            names[path] = name
    return names


def parse_pixels(text: str) -> int:
    """``--max-input-pixels``: an integer in 1..the decoder's ceiling (0: that ceiling)."""
    from ..limits import LimitError, pixel_bound
    try:
        return pixel_bound(int(text))
    except (ValueError, LimitError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def prepare_output_dir(path: Path) -> Path:
    """Create ``path`` (and parents); ``ValueError`` naming it when that is impossible."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f'--output {path}: exists and is not a folder') from None
    except OSError as exc:
        raise ValueError(f'--output {path}: cannot create ({exc.strerror or exc})') \
            from None
    if not os.access(path, os.W_OK):
        raise ValueError(f'--output {path}: not writable')
    return path


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..image_files import collect_images, read_image
    from ..inference import Segmenter
    from ..inference.threads import set_torch_threads
    set_torch_threads(args.threads)
    model = resolve_model(args.model)
    files = list(dict.fromkeys(collect_images(args.images)))  # each file once
    if not files:
        raise FileNotFoundError(f'no image files in {args.images}')
    out_dir = prepare_output_dir(Path(args.output_dir))
    names = output_names(files)
    failed = 0
    with Segmenter(model, backend=args.backend, input_size=args.input_size,
                   device=args.device, precision=args.precision, label_set=args.label_set,
                   threads=args.threads) as seg:
        print(f'model {model}: backend {seg.backend.describe()}, label set '
              f'{seg.label_set.name}')
        for path in files:
            try:
                image = read_image(path, args.max_input_pixels)
                res = seg.segment(image, bgr=True, color=True, overlay=True,
                                  overlay_alpha=args.alpha,
                                  confidence_threshold=args.confidence_threshold)
            except ValueError as exc:
                LOG.error('%s; skipped', exc)
                failed += 1
                continue
            stem = out_dir / names[path]
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
    if failed:
        LOG.error('%d of %d images skipped', failed, len(files))
    return 1 if failed else 0
