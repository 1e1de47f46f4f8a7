#!/usr/bin/env python3
"""Training speed per precision/memory-format setting, side by side in one run, and the loss
curves of fp32 and the fast setting over the same seeded steps.

Usage (from the repository root, on a machine doing nothing else)::

    .venv/bin/python benchmarks/bench_training.py --json benchmarks/bench_training.json

Phase 1 builds one :class:`Trainer` per setting from the same config (real CamVid crops through
the trainer's own data loader) and times whole steps (data + forward + OHEM + backward + SGD) in
interleaved rounds, so load on a shared machine hits every setting alike; it also splits each
step into data loading, the OHEM loss forward and the rest. ``fp32`` is the trainer as the
training-speed issue found it (float32, contiguous NCHW, the heads' upsample by
``F.interpolate``); ``+matmul_upsample`` computes that upsample as two matrix products
(``BiSeNetV2.use_matmul_upsample``, the trainer's default now). Phase 2 trains fp32 and the
fast setting from the same seed on the same batches for ``--curve-steps`` steps and compares
their 25-step mean losses: a block passes when the fast curve is within the tolerance of
fp32's, where the tolerance is twice the median standard error of fp32's own 25-step means
(the batch-to-batch noise: a smaller gap cannot be told from noise).
Nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from typing import Dict, List

SETTINGS: Dict[str, Dict[str, object]] = {
    'fp32': {'cpu_bf16': False, 'channels_last': False, 'matmul_upsample': False},
    'fp32+channels_last': {'cpu_bf16': False, 'channels_last': True, 'matmul_upsample': False},
    'bf16': {'cpu_bf16': True, 'channels_last': False, 'matmul_upsample': False},
    'bf16+channels_last': {'cpu_bf16': True, 'channels_last': True, 'matmul_upsample': False},
    'fp32+matmul_upsample': {'cpu_bf16': False, 'channels_last': False, 'matmul_upsample': True},
    'fp32+channels_last+matmul_upsample': {'cpu_bf16': False, 'channels_last': True,
                                           'matmul_upsample': True},
    'bf16+channels_last+matmul_upsample': {'cpu_bf16': True, 'channels_last': True,
                                           'matmul_upsample': True},
}
BLOCK = 25


class TimedLoss:
    """Wraps the trainer's loss and adds up the time of its forward calls."""

    def __init__(self, loss) -> None:
        self.loss, self.seconds = loss, 0.0

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.loss(*args)
        self.seconds += time.perf_counter() - start
        return out


def build_trainer(config_path: str, setting: Dict[str, object], threads: int, extra: List[str]):
    from bisenet_ros.training.config import load_config
    from bisenet_ros.training.trainer import Trainer
    overrides = [f'train.{k}={str(v).lower()}' for k, v in setting.items()]
    overrides += [f'output_dir={tempfile.mkdtemp(prefix="bench_training_")}', 'val.every=0',
                  f'train.threads={threads}'] + extra
    return Trainer(load_config(config_path, overrides))


def time_steps(trainer, batches, count: int) -> Dict[str, List[float]]:
    """Per-step seconds of ``count`` steps: total, data, loss forward."""
    out: Dict[str, List[float]] = {'step': [], 'data': [], 'loss': []}
    timed = TimedLoss(trainer.criterion)
    trainer.criterion = timed
    for _ in range(count):
        start = time.perf_counter()
        images, labels = next(batches)
        fetched = time.perf_counter()
        timed.seconds = 0.0
        trainer.step(images, labels)
        out['step'].append(time.perf_counter() - start)
        out['data'].append(fetched - start)
        out['loss'].append(timed.seconds)
    trainer.criterion = timed.loss
    return out


def speed_phase(args, names: List[str]) -> Dict[str, Dict[str, float]]:
    trainers, iters, times = {}, {}, {}
    per_round = args.steps
    total = args.warmup + args.rounds * per_round
    for name in names:
        setting = dict(SETTINGS[name]) if name in SETTINGS else {}
        extra = []
        if name.endswith('+compile'):
            setting = dict(SETTINGS[name[:-len('+compile')]])
            extra = ['train.compile=true']
        trainers[name] = build_trainer(args.config, setting, args.threads, extra)
        loader, _ = trainers[name].data_loader(0, total)
        iters[name] = iter(loader)
        start = time.perf_counter()
        time_steps(trainers[name], iters[name], args.warmup)
        times[name] = {'step': [], 'data': [], 'loss': [],
                       'warmup_s': time.perf_counter() - start}
        logging.info('%s: %d warm-up steps in %.1f s', name, args.warmup, times[name]['warmup_s'])
    for r in range(args.rounds):
        for name in names:
            measured = time_steps(trainers[name], iters[name], per_round)
            for key, values in measured.items():
                times[name][key].extend(values)
        logging.info('round %d of %d done', r + 1, args.rounds)
    base = statistics.median(times['fp32']['step'])
    summary = {}
    print(f"\n{'setting':24} {'s/step':>8} {'steps/s':>8} {'vs fp32':>8} {'data':>7} "
          f"{'loss fwd':>8} {'rest':>7}")
    for name in names:
        t = times[name]
        step, data, loss = (statistics.median(t[k]) for k in ('step', 'data', 'loss'))
        summary[name] = {'s_per_step': step, 'steps_per_s': 1 / step, 'vs_fp32': base / step,
                         'data_s': data, 'loss_forward_s': loss,
                         'warmup_s': t['warmup_s'], 'steps_timed': len(t['step'])}
        print(f'{name:24} {step:8.3f} {1 / step:8.3f} {base / step:7.2f}x {data:7.3f} '
              f'{loss:8.3f} {step - data - loss:7.3f}')
    for name in names:
        if name.endswith('+compile'):
            plain = summary[name[:-len('+compile')]]['s_per_step']
            gain = plain - summary[name]['s_per_step']
            extra = summary[name]['warmup_s'] - args.warmup * plain
            payback = extra / gain if gain > 0 else float('inf')
            summary[name]['compile_payback_steps'] = payback
            print(f'{name}: warm-up (compile) cost {extra:.0f} s over the plain warm-up; '
                  f'pays back after {payback:.0f} steps' if gain > 0 else
                  f'{name}: no faster than without torch.compile')
    return summary


def curve(args, setting: Dict[str, object]) -> List[float]:
    trainer = build_trainer(args.config, setting, args.threads, [])
    loader, _ = trainer.data_loader(0, args.curve_steps)
    return [trainer.step(images, labels)[0] for images, labels in loader]


def curve_phase(args, fast: str) -> Dict[str, object]:
    reference = curve(args, SETTINGS['fp32'])
    candidate = curve(args, SETTINGS[fast])
    blocks = []
    for start in range(0, len(reference) - BLOCK + 1, BLOCK):
        ref, cand = reference[start:start + BLOCK], candidate[start:start + BLOCK]
        mean_ref, mean_cand = statistics.fmean(ref), statistics.fmean(cand)
        stderr = statistics.stdev(ref) / BLOCK ** 0.5 / mean_ref
        blocks.append({'steps': [start, start + BLOCK], 'fp32': mean_ref, fast: mean_cand,
                       'rel_diff': mean_cand / mean_ref - 1, 'fp32_rel_stderr': stderr})
    tolerance = 2 * statistics.median(b['fp32_rel_stderr'] for b in blocks)
    print(f'\nloss, {BLOCK}-step means, fp32 vs {fast} (same seed, same batches); tolerance '
          f'{100 * tolerance:.1f}% = 2 x median standard error of fp32\'s block means')
    print(f"{'steps':>10} {'fp32':>8} {fast:>20} {'diff':>7} {'ok':>4}")
    for b in blocks:
        b['within'] = abs(b['rel_diff']) <= tolerance
        print(f"{b['steps'][0]:>4}-{b['steps'][1]:<5} {b['fp32']:8.3f} {b[fast]:20.3f} "
              f"{100 * b['rel_diff']:6.1f}% {'yes' if b['within'] else 'NO':>4}")
    passed = sum(b['within'] for b in blocks)
    last = slice(len(reference) - 2 * BLOCK, len(reference))
    final_diff = statistics.fmean(candidate[last]) / statistics.fmean(reference[last]) - 1
    print(f'{passed} of {len(blocks)} blocks within tolerance; last {2 * BLOCK} steps: '
          f'{100 * final_diff:+.1f}%')
    return {'tolerance': tolerance, 'blocks': blocks, 'blocks_within': passed,
            'final_rel_diff': final_diff, 'fp32_losses': reference, 'fast_losses': candidate}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default='config/train/camvid_cpu.yaml')
    parser.add_argument('--settings', default=','.join(SETTINGS),
                        help='comma list of ' + ', '.join(SETTINGS) + ' (append +compile to '
                        'try torch.compile)')
    parser.add_argument('--fast', default='bf16+channels_last+matmul_upsample',
                        help='setting whose loss curve is compared with fp32')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per setting')
    parser.add_argument('--rounds', type=int, default=4, help='0 skips the speed phase')
    parser.add_argument('--steps', type=int, default=6, help='timed steps per setting and round')
    parser.add_argument('--curve-steps', type=int, default=300, help='0 skips the curves')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    names = [n.strip() for n in args.settings.split(',') if n.strip()]
    unknown = [n for n in names if n.replace('+compile', '') not in SETTINGS]
    if unknown or 'fp32' not in names:
        parser.error(f'settings must include fp32 and come from {list(SETTINGS)}; got {unknown}')
    from bisenet_ros.training.precision import cpu_flags, native_bf16
    results = {'cpu_native_bf16': native_bf16(cpu_flags()),
               'config': args.config, 'threads': args.threads}

    def save() -> None:  # after each phase, so a cut-short run keeps what it measured
        if args.json:
            with open(args.json, 'w') as handle:
                json.dump(results, handle, indent=1)
    if args.rounds:
        results['speed'] = speed_phase(args, names)
        save()
    if args.curve_steps:
        results['curves'] = curve_phase(args, args.fast)
        save()
    return 0


if __name__ == '__main__':
    sys.exit(main())
