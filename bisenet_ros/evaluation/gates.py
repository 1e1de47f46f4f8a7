"""Accept or reject a model from an evaluation report (e.g. an fp16 engine against fp32)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def check_gates(report: Dict[str, Any], min_agreement: Optional[float],
                min_miou: Optional[float]) -> List[str]:
    """Failed acceptance checks, one sentence each (empty: accepted)."""
    failures = []
    if min_agreement is not None:
        if not report.get('agreement'):
            failures.append('--min-agreement needs at least two models')
        for a in report.get('agreement') or []:
            if a['miou'] is None or a['miou'] < min_agreement:
                failures.append(f"{a['candidate']} agrees with {a['reference']} at mIoU "
                                f"{a['miou']}, below {min_agreement}")
    if min_miou is not None:
        for model in report['models']:
            miou = (model.get('accuracy') or {}).get('miou')
            if miou is None or miou < min_miou:
                failures.append(f"{model['name']} reaches mIoU {miou} on the ground truth, "
                                f'below {min_miou}')
    return failures
