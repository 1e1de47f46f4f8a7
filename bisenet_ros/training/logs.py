"""Run logs: CSV files (always), TensorBoard (when installed), a progress bar or log lines."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
import sys
from typing import Any, Sequence

LOGGER = logging.getLogger(__name__)
TRAIN_FIELDS = ['iteration', 'epoch', 'lr', 'loss', 'loss_main', 'loss_aux', 'elapsed_s',
                'step_s']


def _truncate_csv(path: Path, keep_until: int) -> None:
    """Drop rows logged after ``keep_until`` (they are redone after a resume)."""
    if not path.is_file():
        return
    with path.open(newline='') as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= keep_until]
    with path.open('w', newline='') as handle:
        csv.writer(handle).writerows(kept)


class MetricsLog:
    """``train_log.csv`` (one row per iteration) and ``val_log.csv`` (one row per validation)."""

    def __init__(self, out: Path, *, enabled: bool = True, resume_at: int = 0,
                 tensorboard: bool = True) -> None:
        self.enabled, self.out = enabled, out
        self.writer: Any = None
        if not enabled:
            return
        for name in ('train_log.csv', 'val_log.csv'):
            _truncate_csv(out / name, resume_at)
        new = not (out / 'train_log.csv').is_file()
        self._train = (out / 'train_log.csv').open('a', newline='')
        self._train_csv = csv.writer(self._train)
        if new:
            self._train_csv.writerow(TRAIN_FIELDS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(out / 'tensorboard'))
            except ImportError:
                LOGGER.info('tensorboard is not installed; logging to CSV only')

    def train_row(self, iteration: int, epoch: int, lr: float, losses: Sequence[float],
                  elapsed: float, step: float) -> None:
        if not self.enabled:
            return
        self._train_csv.writerow([iteration, epoch, f'{lr:.6g}'] +
                                 [f'{v:.5f}' for v in losses] + [f'{elapsed:.1f}', f'{step:.3f}'])
        self._train.flush()
        if self.writer is not None:
            self.writer.add_scalar('train/loss', losses[0], iteration)
            self.writer.add_scalar('train/lr', lr, iteration)

    def val_row(self, iteration: int, scores: Any, class_names: Sequence[str]) -> None:
        if not self.enabled:
            return
        path = self.out / 'val_log.csv'
        new = not path.is_file()
        with path.open('a', newline='') as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(['iteration', 'miou', 'pixel_accuracy'] +
                                [f'iou_{n}' for n in class_names])
            writer.writerow([iteration, f'{scores.miou:.5f}', f'{scores.pixel_accuracy:.5f}'] +
                            [f'{v:.5f}' for v in scores.iou])
        if self.writer is not None:
            self.writer.add_scalar('val/miou', scores.miou, iteration)

    def close(self) -> None:
        if self.enabled:
            self._train.close()
            if self.writer is not None:
                self.writer.close()


class Progress:
    """tqdm bar when tqdm is installed and stderr is a terminal (or ``mode='tqdm'``), else an
    INFO log line every ``every`` iterations (``mode='log'``)."""

    def __init__(self, total: int, start: int, mode: str = 'auto', every: int = 10, *,
                 enabled: bool = True) -> None:
        self.every, self.enabled, self.bar = max(1, every), enabled, None
        self.total = total
        if not enabled or mode == 'log':
            return
        if mode == 'tqdm' or (mode == 'auto' and sys.stderr.isatty()):
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=start, unit='it', dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, iteration: int, loss: float, lr: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f'{loss:.3f}', lr=f'{lr:.2e}')
        elif iteration % self.every == 0 or iteration == self.total:
            LOGGER.info('iteration %d/%d loss %.4f lr %.3e', iteration, self.total, loss, lr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
