"""PNG figures of an evaluation: per-class IoU bars, confusion matrix, latency histogram.

Uses matplotlib's object API with the Agg canvas (no global backend switch, no display).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Mapping, Sequence

import numpy as np

LOG = logging.getLogger(__name__)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def iou_bars(models: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Grouped bars of per-class IoU (%) for every model that has ground-truth scores."""
    scored = [m for m in models if m.get('accuracy')]
    if not scored:
        return False
    names = list(scored[0]['accuracy']['iou'])
    fig = _figure(max(6.0, 0.6 * len(names) + 2), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(scored)
    x = np.arange(len(names))
    for i, model in enumerate(scored):
        values = [100 * (v if v is not None else 0.0) for v in model['accuracy']['iou'].values()]
        miou = model['accuracy']['miou']
        label = f"{model['name']} (mIoU {100 * miou:.1f}%)" if miou is not None else model['name']
        ax.bar(x + (i - (len(scored) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, names, rotation=45, ha='right')
    ax.set_ylabel('IoU (%)')
    ax.set_ylim(0, 100)
    ax.set_title('Per-class IoU')
    ax.legend(loc='upper right', fontsize='small')
    fig.savefig(path)
    return True


def confusion_matrix(model: Mapping[str, Any], class_names: Sequence[str], path: Path) -> bool:
    """Row-normalised confusion matrix (ground truth rows, prediction columns) of one model."""
    matrix = model.get('confusion_matrix')
    if not matrix:
        return False
    m = np.asarray(matrix, np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(class_names)
    fig = _figure(max(5.0, 0.45 * n + 2.5), max(4.5, 0.45 * n + 2))
    ax = fig.add_subplot()
    image = ax.imshow(norm, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha='right')
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel('predicted')
    ax.set_ylabel('ground truth')
    ax.set_title(f"Confusion matrix ({model['name']}, rows normalised)")
    if n <= 20:
        for r in range(n):
            for c in range(n):
                if norm[r, c] >= 0.005:
                    ax.text(c, r, f'{100 * norm[r, c]:.0f}', ha='center', va='center',
                            fontsize=6, color='white' if norm[r, c] > 0.5 else 'black')
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.savefig(path)
    return True


def latency_histogram(samples_ms: Mapping[str, Sequence[float]], path: Path,
                      title: str = 'Latency') -> bool:
    """Histogram of latencies (ms), one series per name (e.g. model or 'end to end')."""
    series = {k: np.asarray(v, np.float64) for k, v in samples_ms.items() if len(v)}
    if not series:
        return False
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    upper = max(float(np.percentile(v, 99.5)) for v in series.values())
    bins = np.linspace(0.0, upper * 1.05 + 1e-6, 40)
    for name, values in series.items():
        ax.hist(np.clip(values, 0, bins[-1]), bins=bins, alpha=0.6,
                label=f'{name} (p50 {np.median(values):.1f} ms)')
    ax.set_xlabel('milliseconds')
    ax.set_ylabel('frames')
    ax.set_title(title)
    ax.legend(fontsize='small')
    fig.savefig(path)
    return True


def write_plots(report: Mapping[str, Any], latency_samples_ms: Mapping[str, Sequence[float]],
                out_dir: Path, latency_title: str = 'Latency per frame') -> List[str]:
    """Every figure that has data; returns file names written in ``out_dir``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        LOG.warning('matplotlib is not installed: no plots (pip install matplotlib)')
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written: List[str] = []
    models = report.get('models', [])
    if iou_bars(models, out_dir / 'per_class_iou.png'):
        written.append('per_class_iou.png')
    classes = report.get('label_set', {}).get('classes', [])
    for i, model in enumerate(models):
        name = 'confusion_matrix.png' if i == 0 else f'confusion_matrix_{i}.png'
        if confusion_matrix(model, classes, out_dir / name):
            written.append(name)
    if latency_histogram(latency_samples_ms, out_dir / 'latency_histogram.png', latency_title):
        written.append('latency_histogram.png')
    return written
