"""``bisenet evaluate``: mIoU, per-class IoU and pixel accuracy of a checkpoint on a dataset split,
at a single scale and (``--multi-scale``) with several scales plus horizontal flip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import time
from typing import Dict, List, Optional

from ..user_files import write_atomic

DEFAULT_MS_SCALES = (0.5, 0.75, 1.0, 1.25)


def add_dataset_arguments(parser: argparse.ArgumentParser, split: str, split_note: str = ''
                          ) -> None:
    """The options :func:`dataset_for` reads; ``split`` is the default ``--split``."""
    parser.add_argument('--dataset', choices=('camvid', 'cityscapes', 'folder'),
                        help='dataset kind (default: from --config, else camvid)')
    parser.add_argument('--data-root', help='camvid/cityscapes root folder')
    parser.add_argument('--split', default=split,
                        help=f'split name (default: {split}), or holdout (the frames of the '
                        'held-out sequences of the run\'s dataset.holdout_sequences), or '
                        f'holdout:SEQ[,SEQ...] (e.g. holdout:0006R0){split_note}')
    parser.add_argument('--images', help='kind folder: image folder')
    parser.add_argument('--labels', help='kind folder: label PNG folder')
    parser.add_argument('--config', help='training YAML whose dataset section to use')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='project checkpoint (.pt) or training state '
                        '(last.pt/best.pt)')
    add_dataset_arguments(parser, 'val')
    parser.add_argument('--label-set', help='label set name or YAML (default: the checkpoint\'s)')
    parser.add_argument('--scale', type=float, default=None,
                        help="single-scale resize factor (default: the checkpoint's val_scale "
                        'meta, else 1.0)')
    parser.add_argument('--multi-scale', action='store_true',
                        help='also evaluate multi-scale + flip (scales from --ms-scales)')
    parser.add_argument('--ms-scales', type=float, nargs='+', default=None,
                        help=f'multi-scale factors, times --scale (default {DEFAULT_MS_SCALES})')
    parser.add_argument('--max-images', type=int, help='evaluate only the first N images')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument('-o', '--output', '--output-dir', dest='output_dir',
                        help='write metrics.json and class_iou.png here')


def _load(args: argparse.Namespace):
    """(model, label_set, meta) from a project checkpoint or a training state."""
    from ..model.checkpoint import load_model
    from ..training.checkpoint_export import model_from_train_state
    from ..training.state import TRAIN_STATE_FORMAT
    import torch
    raw_format = None
    try:
        raw = torch.load(args.checkpoint, map_location='cpu', weights_only=True, mmap=True)
        raw_format = raw.get('format') if isinstance(raw, dict) else None
    except Exception:  # load_model below reports unreadable files precisely
        pass
    if raw_format == TRAIN_STATE_FORMAT:
        model, label_set, config = model_from_train_state(args.checkpoint)
        return model, label_set, {'val_scale': config['val']['scale'], 'config': config}
    model = load_model(args.checkpoint, label_set=args.label_set)
    return model, model.label_set, dict(model.checkpoint_info.meta)


def dataset_for(args: argparse.Namespace, label_set, meta: Dict):
    """The split ``args.split`` of the dataset that ``args`` names (``--config``, ``--dataset``,
    ``--data-root``, ``--images``/``--labels``), else of the one in the checkpoint's ``meta``."""
    from ..training.config import load_config
    from ..training.datasets import build_dataset
    spec: Dict[str, object] = {}
    if args.config:
        spec = dict(load_config(args.config)['dataset'])
    elif isinstance(meta.get('config'), dict):
        spec = dict(meta['config'].get('dataset', {}))
    if args.dataset:
        spec['kind'] = args.dataset
    spec.setdefault('kind', 'camvid')
    if args.data_root:
        spec['root'] = args.data_root
    if args.images or args.labels:
        spec[f'{args.split}_images'], spec[f'{args.split}_labels'] = args.images, args.labels
    spec['label_set'] = label_set
    return build_dataset(spec, args.split, cache=False)


def run(args: argparse.Namespace) -> int:
    from ..inference.threads import set_torch_threads
    from ..training.validation import evaluate_dataset
    from ..training.trainer import select_device
    set_torch_threads(args.threads)
    device = select_device(args.device, '--device')
    model, label_set, meta = _load(args)
    model = model.to(device).eval()
    dataset = dataset_for(args, label_set, meta)
    base = args.scale if args.scale is not None else float(meta.get('val_scale') or 1.0)
    settings: List[tuple] = [(f'single scale {base:g}', (base,), False)]
    if args.multi_scale:
        factors = args.ms_scales or DEFAULT_MS_SCALES
        scales = tuple(round(base * f, 4) for f in factors)
        settings.append((f"scales {','.join(f'{s:g}' for s in scales)} + flip", scales, True))
    results: Dict[str, Dict[str, object]] = {}
    for name, scales, flip in settings:
        start = time.time()
        matrix = evaluate_dataset(model, dataset, scales=scales, flip=flip, device=device,
                                  max_images=args.max_images)
        scores = matrix.scores().as_dict(label_set.class_names)
        scores.update({'scales': list(scales), 'flip': flip, 'seconds': round(time.time() - start,
                                                                              1)})
        results[name] = scores
        _print(name, scores, dataset)
    if args.output_dir:
        _write(Path(args.output_dir), args, results, label_set, dataset)
    return 0


def _print(name: str, scores: Dict, dataset) -> None:
    print(f'== {dataset.name} ({len(dataset)} images), {name}: mIoU {100 * scores["miou"]:.2f}% '
          f'pixel accuracy {100 * scores["pixel_accuracy"]:.2f}% ({scores["seconds"]} s)')
    for cls, iou in scores['iou'].items():
        print(f'   {cls:<16} {"n/a" if iou is None else f"{100 * iou:6.2f}"}')


def _write(out: Path, args: argparse.Namespace, results: Dict, label_set, dataset) -> None:
    from ..training.curves import plot_class_iou
    out.mkdir(parents=True, exist_ok=True)
    report = {'checkpoint': str(args.checkpoint), 'dataset': dataset.name,
              'images': len(dataset) if args.max_images is None
              else min(len(dataset), args.max_images), 'results': results}
    write_atomic(out / 'metrics.json', json.dumps(report, indent=2))
    plot_class_iou(results, out / 'class_iou.png', colors=label_set.colors,
                   title=f'{Path(args.checkpoint).name} on {dataset.name}')
    print(f'wrote {out / "metrics.json"} and {out / "class_iou.png"}')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='bisenet evaluate')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    import sys
    sys.exit(main())
