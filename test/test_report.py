"""Reports from a live-style run: JSON without NaN, Markdown, console lines, plots, overlays."""

import json

import cv2
import numpy as np
import pytest

from bisenet_ros.evaluation.accumulators import LatencyStats
from bisenet_ros.evaluation.outputs import write_outputs
from bisenet_ros.evaluation.report import markdown, summary_lines
from bisenet_ros.evaluation.stream_eval import ModelStats, StreamEvaluation
from bisenet_ros.labels import load_label_set


@pytest.fixture
def live_run():
    """A live-style evaluation: 4 frames, one dropped, one class never seen, mask resized."""
    camvid = load_label_set('camvid')
    run = StreamEvaluation([ModelStats('segmentation_node', camvid, {'node': 'running'})],
                           sample_every=2, max_samples=2)
    truth = np.zeros((8, 12), np.uint8)
    truth[4:] = 3  # sky over road
    truth[0, 0] = 255
    image = np.full((8, 12, 3), 90, np.uint8)
    run.add_frame(0, 10, image, truth, [truth.copy()], [{'end_to_end': 0.030}])
    run.add_frame(1, 20, image, truth, [None])  # dropped: no mask arrived
    half = truth[::2, ::2].copy()                 # a mask at half resolution is resized
    half[0, 0] = 0
    run.add_frame(2, 30, image, truth, [half], [{'end_to_end': 0.050}])
    run.add_frame(3, 40, image, None, [np.full((8, 12), 3, np.uint8)],
                  [{'end_to_end': 0.040}])
    run.info.source = {'bag': '/data/x.bag', 'mode': 'live replay'}
    run.info.frames = {'sent': 4, 'masks_received': 3, 'dropped': 1, 'dropped_share': 0.25}
    return run


def test_live_report_contents(live_run):
    report = live_run.as_dict()
    model = report['models'][0]
    assert model['frames'] == 3 and model['frames_scored'] == 2
    assert model['predictions_resized_to_ground_truth'] == 1
    assert model['accuracy']['miou'] == pytest.approx(1.0)  # only sky and road, all right
    assert model['accuracy']['iou']['car'] is None           # absent class: n/a, not 0
    assert model['latency_ms']['end_to_end']['p50_ms'] == pytest.approx(40.0)
    assert model['fps'] is None  # no per-call timing in live mode: rate comes from delivery
    text = markdown(report, ['latency_histogram.png'])
    assert '| dropped | 1 |' in text and '| car | n/a | n/a |' in text
    assert '![latency_histogram](latency_histogram.png)' in text
    lines = summary_lines(report)
    assert lines[0].startswith('frames: sent 4, masks received 3, dropped 1')
    assert 'mIoU 100.00%' in lines[1] and 'p50 40.0' in lines[1]


def test_write_outputs_files(live_run, tmp_path):
    result = write_outputs(live_run, tmp_path, extra={'note': 'test'})
    report = json.loads((tmp_path / 'report.json').read_text())  # strict JSON: no NaN
    assert report['note'] == 'test'
    assert set(result['images']) == {'per_class_iou.png', 'confusion_matrix.png',
                                     'latency_histogram.png', 'sample_0000.png',
                                     'sample_0002.png'}
    assert sorted(report['files']) == sorted(result['images'] + ['report.json', 'report.md'])
    panel = cv2.imread(str(tmp_path / 'sample_0000.png'))
    assert panel.shape == (8, 36, 3)  # camera | overlay | ground truth
    assert cv2.imread(str(tmp_path / 'confusion_matrix.png')) is not None


def test_latency_stats_empty_and_percentiles():
    stats = LatencyStats()
    assert stats.summary()['p95_ms'] is None
    for ms in range(1, 101):
        stats.add(ms / 1000)
    summary = stats.summary()
    assert summary['count'] == 100 and summary['max_ms'] == pytest.approx(100)
    assert summary['p50_ms'] == pytest.approx(50.5) and summary['p99_ms'] == pytest.approx(99.01)
