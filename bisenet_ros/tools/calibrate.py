"""``bisenet calibrate``: fit per-class logit offsets on a training split and fold them into a
copy of the checkpoint (same architecture and inference cost; see
:mod:`bisenet_ros.training.logit_offsets`)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import List, Optional

from .evaluate import add_dataset_arguments, dataset_for

LOGGER = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='project checkpoint (.pt) to calibrate')
    parser.add_argument('output', help='calibrated project checkpoint to write (.pt)')
    add_dataset_arguments(parser, 'train', '; the offsets are fitted on it: keep the split you '
                          'report on out of it')
    parser.add_argument('--scale', type=float, default=None,
                        help="resize factor (default: the checkpoint's val_scale meta, else 1.0)")
    parser.add_argument('--stride', type=int, default=4,
                        help='use every N-th pixel along both axes (default 4)')
    parser.add_argument('--max-images', type=int, help='use only the first N images')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')


def run(args: argparse.Namespace) -> int:
    from ..inference.threads import set_torch_threads
    from ..model.checkpoint import load_model, save_checkpoint
    from ..training.logit_offsets import (add_logit_offsets, fit_logit_offsets,
                                          LOGIT_OFFSETS_META, offsets_meta, recorded_offsets,
                                          sample_logits)
    from ..training.trainer import select_device
    set_torch_threads(args.threads)
    if os.path.realpath(args.output) == os.path.realpath(args.checkpoint):
        raise ValueError(f'output {args.output}: expected a new file, not the checkpoint itself')
    device = select_device(args.device, '--device')
    model = load_model(args.checkpoint).to(device).eval()
    info, label_set = model.checkpoint_info, model.label_set
    meta = dict(info.meta)
    earlier = recorded_offsets(meta, label_set.class_names)
    if earlier is not None:  # fit from the trained bias, not on top of an earlier fit
        add_logit_offsets(model, -earlier)
    dataset = dataset_for(args, label_set, meta)
    trained_on = (meta.get('config') or {}).get('dataset') or {}
    if args.split == trained_on.get('val_split'):
        LOGGER.warning('fitting on %s, the split this model is validated on: its val figures '
                       'will be optimistic', args.split)
    held = sorted(set(trained_on.get('holdout_sequences') or []) & set(dataset.sequences()))
    if held:
        LOGGER.warning('fitting on %s, which holds the sequence(s) %s that this model\'s run '
                       'held out: its held-out figures will be optimistic', dataset.name, held)
    scale = args.scale if args.scale is not None else float(meta.get('val_scale') or 1.0)
    start = time.time()
    logits, labels = sample_logits(model, dataset, stride=args.stride, scale=scale,
                                   max_images=args.max_images, device=device)
    offsets, before, after = fit_logit_offsets(logits, labels)
    add_logit_offsets(model, offsets)
    images = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    meta[LOGIT_OFFSETS_META] = offsets_meta(
        offsets, label_set.class_names, fitted_on=f'{dataset.name} ({images} images)',
        scale=scale, stride=args.stride, pixels=int(len(labels)),
        miou_before=round(before, 4), miou_after=round(after, 4))
    path = save_checkpoint(args.output, model.cpu(), label_set, variant=info.variant,
                           input_size=info.input_size, meta=meta)
    print(f'{dataset.name} ({images} images, {len(labels)} pixels, {time.time() - start:.0f} s): '
          f'mIoU {100 * before:.2f}% -> {100 * after:.2f}% with offsets')
    for name, value in zip(label_set.class_names, offsets):
        print(f'   {name:<16} {value:+.2f}')
    print(f'wrote {path}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='bisenet calibrate')
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    import sys
    sys.exit(main())
