"""Write everything an evaluation produced into one folder: JSON, Markdown, plots, samples."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from .overlays import write_samples
from .plots import write_plots
from .report import summary_lines, write_reports
from .stream_eval import StreamEvaluation

LOG = logging.getLogger(__name__)


def write_outputs(evaluation: StreamEvaluation, out_dir: Path, plots: bool = True,
                  extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Write ``report.json``, ``report.md``, PNG plots and sample overlays into ``out_dir``.

    Returns ``{'report': dict, 'paths': {...}, 'summary': [console lines]}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: Dict[str, Any] = evaluation.as_dict()
    report.update(extra or {})
    latency: Dict[str, List[float]] = {}
    title = 'Latency per frame'
    for model in evaluation.models:
        for stage in ('total', 'end_to_end'):
            stats = model.latency.get(stage)
            if stats and stats.samples:
                latency[model.name] = [1e3 * s for s in stats.samples]
                title = ('End-to-end latency (image published -> mask received)'
                         if stage == 'end_to_end' else 'Segmenter latency per frame')
                break
    images: List[str] = []
    if plots:
        try:
            images += write_plots(report, latency, out_dir, title)
        except Exception as exc:  # a plotting problem must not lose the report
            LOG.warning('plots failed: %s', exc)
    names = [m.name for m in evaluation.models]
    images += write_samples(evaluation.samples, evaluation.label_set, out_dir, names)
    paths = write_reports(report, out_dir, images)
    return {'report': report, 'paths': paths, 'images': images,
            'summary': summary_lines(report)}
