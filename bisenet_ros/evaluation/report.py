"""Evaluation reports: ``report.json`` (everything), ``report.md`` (for people), console summary.

The input is the plain dict from :meth:`StreamEvaluation.as_dict` plus the run's extras (live
delivery counts, files written); nothing here computes metrics.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..user_files import write_atomic


def _pct(value: Optional[float]) -> str:
    return 'n/a' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{100 * value:.2f}%'


def _ms(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.1f}'


def write_json(report: Mapping[str, Any], path: Path) -> Path:
    """Write ``report`` as indented JSON (NaN-free: metrics already use ``None``)."""
    write_atomic(path, json.dumps(report, indent=2, allow_nan=False) + '\n')
    return path


def _frames_table(frames: Mapping[str, Any]) -> List[str]:
    lines = ['| frames | count |', '| --- | --- |']
    lines += [f'| {key.replace("_", " ")} | {value} |' for key, value in frames.items()]
    return lines


def _latency_table(latency: Mapping[str, Mapping[str, Any]]) -> List[str]:
    if not latency:
        return []
    lines = ['| stage | n | mean ms | p50 | p90 | p95 | p99 | max |',
             '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for stage, s in latency.items():
        lines.append(f"| {stage} | {s['count']} | {_ms(s['mean_ms'])} | {_ms(s['p50_ms'])} | "
                     f"{_ms(s['p90_ms'])} | {_ms(s['p95_ms'])} | {_ms(s['p99_ms'])} | "
                     f"{_ms(s['max_ms'])} |")
    return lines


def _model_section(model: Mapping[str, Any]) -> List[str]:
    lines = [f"## {model['name']}", '']
    details = [f'{k}: `{v}`' for k, v in model.items()
               if k in ('backend', 'model', 'precision', 'device', 'smoothing', 'node',
                        'mask_topic', 'rate_scale', 'max_in_flight')]
    if details:
        lines += ['- ' + '; '.join(details), '']
    acc = model.get('accuracy')
    lines.append(f"Frames predicted: {model['frames']}, scored against ground truth: "
                 f"{model['frames_scored']}.")
    if acc:
        lines += ['', f"**mIoU {_pct(acc['miou'])}**, pixel accuracy "
                  f"{_pct(acc['pixel_accuracy'])}, mean class accuracy "
                  f"{_pct(acc['mean_class_accuracy'])} ({acc['pixels']} labelled pixels).", '',
                  '| class | IoU | accuracy |', '| --- | --- | --- |']
        lines += [f"| {name} | {_pct(iou)} | {_pct(acc['class_accuracy'][name])} |"
                  for name, iou in acc['iou'].items()]
    if model.get('fps'):
        lines += ['', f"Throughput: {model['fps']:.1f} frames/s (1 / mean total latency)."]
    lines += [''] + _latency_table(model.get('latency_ms', {}))
    temporal = model.get('temporal_consistency') or {}
    if temporal.get('pairs'):
        lines += ['', f"Flicker: {_pct(temporal['mean_flip_share'])} of pixels change label "
                  f"between consecutive frames on average (max "
                  f"{_pct(temporal['max_flip_share'])}, {temporal['pairs']} pairs)."]
    dist = model.get('class_distribution') or {}
    if dist:
        top = sorted(dist.items(), key=lambda kv: -kv[1])
        lines += ['', 'Predicted class distribution: '
                  + ', '.join(f'{name} {_pct(share)}' for name, share in top if share > 0)]
    return lines + ['']


def markdown(report: Mapping[str, Any], images: Sequence[str] = ()) -> str:
    """The human-readable report; ``images`` are file names relative to the report."""
    source = report.get('source', {})
    lines = [f"# Segmentation evaluation: {source.get('bag', '?')}", '']
    lines += [f'- {key.replace("_", " ")}: `{value}`' for key, value in source.items()]
    lines += [''] + _frames_table(report.get('frames', {})) + ['']
    for model in report.get('models', []):
        lines += _model_section(model)
    agreements = report.get('agreement') or []
    if agreements:
        lines += ['## Agreement between models', '',
                  '| reference | candidate | mIoU of candidate vs reference | pixel agreement |',
                  '| --- | --- | --- | --- |']
        lines += [f"| {a['reference']} | {a['candidate']} | {_pct(a['miou'])} | "
                  f"{_pct(a['pixel_agreement'])} |" for a in agreements]
        lines.append('')
    if images:
        lines += ['## Figures', '']
        lines += [f'![{Path(name).stem}]({name})' for name in images]
        lines.append('')
    return '\n'.join(lines)


def summary_lines(report: Mapping[str, Any]) -> List[str]:
    """A few lines for the console: accuracy, speed and frame accounting per model."""
    out: List[str] = []
    frames = report.get('frames', {})
    accounting = ', '.join(f'{k.replace("_", " ")} {v}' for k, v in frames.items())
    if accounting:
        out.append(f'frames: {accounting}')
    for model in report.get('models', []):
        acc = model.get('accuracy') or {}
        total = (model.get('latency_ms') or {}).get('total') \
            or (model.get('latency_ms') or {}).get('end_to_end') or {}
        parts = [f"{model['name']}:"]
        if acc:
            parts.append(f"mIoU {_pct(acc.get('miou'))}, pixel accuracy "
                         f"{_pct(acc.get('pixel_accuracy'))}")
        if total.get('count'):
            parts.append(f"latency mean {_ms(total['mean_ms'])} ms, p50 {_ms(total['p50_ms'])}"
                         f", p95 {_ms(total['p95_ms'])} ms")
        if model.get('fps'):
            parts.append(f"{model['fps']:.1f} FPS")
        temporal = model.get('temporal_consistency') or {}
        if temporal.get('pairs'):
            parts.append(f"flicker {_pct(temporal['mean_flip_share'])} (label flips/frame)")
        out.append(' '.join(parts[:1]) + ' ' + '; '.join(parts[1:]))
    for a in report.get('agreement') or []:
        out.append(f"agreement {a['candidate']} vs {a['reference']}: mIoU {_pct(a['miou'])}, "
                   f"pixels {_pct(a['pixel_agreement'])}")
    return out


def write_reports(report: Dict[str, Any], out_dir: Path, images: Sequence[str] = ()
                  ) -> Dict[str, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = dict(report, files=sorted(set(list(images) + ['report.json', 'report.md'])))
    paths = {'json': write_json(report, out_dir / 'report.json'),
             'markdown': out_dir / 'report.md'}
    write_atomic(paths['markdown'], markdown(report, images))
    return paths
