"""PNG charts: per-class IoU bars and the training curve (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError('PNG charts need matplotlib: pip install matplotlib') from exc
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> Path:
    """Lay out, write as PNG (parent folders created) and close ``fig``."""
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def plot_class_iou(results: Dict[str, Dict[str, object]], path: Union[str, Path], *,
                   title: str = 'Per-class IoU', colors: Optional[Sequence] = None) -> Path:
    """Grouped horizontal bars, one group per class and one bar per result.

    Args:
        results: Setting name -> ``SegmentationScores.as_dict(names)`` output.
        colors: RGB 0..255 per class for the tick labels' swatches (optional).
    """
    plt = _pyplot()
    names = list(next(iter(results.values()))['iou'])  # type: ignore[arg-type]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.5))
    height = 0.8 / len(results)
    for k, (setting, scores) in enumerate(results.items()):
        values = [(scores['iou'].get(n) or 0.0) * 100 for n in names]  # type: ignore
        ys = [i + k * height for i in range(len(names))]
        ax.barh(ys, values, height=height,
                label=f"{setting}: mIoU {100 * (scores['miou'] or 0):.1f}%")
        for y, v in zip(ys, values):
            ax.text(v + 0.5, y, f'{v:.1f}', va='center', fontsize=7)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))])
    ax.set_yticklabels(names)
    if colors is not None:
        for tick, color in zip(ax.get_yticklabels(), colors):
            tick.set_bbox({'facecolor': [c / 255 for c in color], 'alpha': 0.35, 'pad': 1,
                           'edgecolor': 'none'})
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel('IoU (%)')
    ax.set_title(title)
    ax.legend(loc='lower right', fontsize=8)
    return _save(fig, path)


def _read_csv(path: Path) -> List[Dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline='') as handle:
        return list(csv.DictReader(handle))


def spaced_labels(xs: Sequence[float], ys: Sequence[float], min_dx: float, min_dy: float,
                  keep: Sequence[int] = ()) -> List[int]:
    """Indices of the points to write a value beside, ascending: every index in ``keep``, then
    the others from the last one back, each kept apart from every point already chosen by at
    least ``min_dx`` along x or ``min_dy`` along y (data units), so that the labels of
    snapshots taken close together do not overlap."""
    chosen = list(dict.fromkeys(keep))
    for i in reversed(range(len(xs))):
        if all(abs(xs[i] - xs[j]) >= min_dx or abs(ys[i] - ys[j]) >= min_dy for j in chosen):
            chosen.append(i)
    return sorted(chosen)


def plot_training_curve(run_dir: Union[str, Path], path: Union[str, Path], *,
                        smooth: int = 20, title: str = 'Training') -> Path:
    """Loss (raw and moving average), learning rate and validation mIoU of a run folder."""
    plt = _pyplot()
    run = Path(run_dir)
    train = _read_csv(run / 'train_log.csv')
    if not train:
        raise FileNotFoundError(f'{run / "train_log.csv"}: missing or empty')
    its = [int(r['iteration']) for r in train]
    loss = [float(r['loss']) for r in train]
    avg = [sum(loss[max(0, i - smooth + 1):i + 1]) / len(loss[max(0, i - smooth + 1):i + 1])
           for i in range(len(loss))]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(its, loss, color='0.75', linewidth=0.6, label='loss (main + 4 booster heads)')
    ax_loss.plot(its, avg, color='C0', label=f'moving average ({smooth})')
    ax_loss.set_xlabel('iteration')
    ax_loss.set_ylabel('OHEM cross-entropy')
    ax_lr = ax_loss.twinx()
    ax_lr.plot(its, [float(r['lr']) for r in train], color='C3', linewidth=0.8, label='lr')
    ax_lr.set_ylabel('base learning rate', color='C3')
    ax_loss.legend(loc='upper right', fontsize=8)
    val = _read_csv(run / 'val_log.csv')
    if val:
        val_its = [int(r['iteration']) for r in val]
        miou = [100 * float(r['miou']) for r in val]
        ax_val.plot(val_its, miou, 'o-', color='C2')
        best = max(range(len(miou)), key=miou.__getitem__)
        spread = max(miou) - min(miou)
        for i in spaced_labels(val_its, miou, max(its) / 15, spread / 16,
                               keep=(best, len(val) - 1)):
            ax_val.annotate(f'{miou[i]:.1f}', (val_its[i], miou[i]), textcoords='offset points',
                            xytext=(0, 6), ha='center', fontsize=8)
    ax_val.set_xlabel('iteration')
    ax_val.set_ylabel('val mIoU (%)')
    ax_val.set_xlim(0, max(its) * 1.05)
    ax_val.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m bisenet_ros.training.curves RUN_DIR OUT.png [TITLE]``: the training curve."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(main.__doc__)
        return 2
    print(plot_training_curve(args[0], args[1], title=args[2] if len(args) == 3 else 'Training'))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
