"""Offline bag evaluation: exact metrics on a hand-computed case, and the CLI with real models."""

import json

import numpy as np
import pytest

from bisenet_ros.bags import messages
from bisenet_ros.bags.make import write_frames_bag
from bisenet_ros.bags.reader import BagReader
from bisenet_ros.bags.writer import BagWriter
from bisenet_ros.cli import main as cli_main
from bisenet_ros.evaluation.bag_frames import BagFrames
from bisenet_ros.evaluation.offline import evaluate_frames, frame_accounting, NamedPredictor
from bisenet_ros.evaluation.outputs import write_outputs
from bisenet_ros.labels import load_label_set

S = 10**9
T0 = 1_700_000_000 * S

# Hand-made case, 3 classes, 255 = unlabelled. The "model" predicts the image's green channel.
G0 = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
P0 = np.array([[0, 1, 1, 1], [2, 0, 2, 2]], np.uint8)
P1 = np.full((2, 4), 2, np.uint8)                           # frame 1 has no ground truth
G2 = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], np.uint8)
P2 = G2.copy()
# Rows = ground truth, columns = prediction, worked out by hand from the arrays above.
EXPECTED_MATRIX = [[5, 1, 0], [0, 6, 0], [1, 0, 1]]
EXPECTED_IOU = {'a': 5 / 7, 'b': 6 / 7, 'c': 1 / 2}


@pytest.fixture
def three_classes(tmp_path):
    path = tmp_path / 'abc.yaml'
    path.write_text('name: abc\nignore_index: 255\nclasses:\n'
                    '  - {name: a, color: [255, 0, 0]}\n  - {name: b, color: [0, 255, 0]}\n'
                    '  - {name: c, color: [0, 0, 255]}\n')
    return load_label_set(path)


def _image(pred):
    image = np.zeros(pred.shape + (3,), np.uint8)
    image[:, :, 1] = pred  # green is channel 1 in BGR and RGB alike
    return image


def _hand_made_bag(path):
    with BagWriter(path, storage='mcap') as writer:
        writer.add_topic('/camera/image_raw', messages.IMAGE_TYPE)
        writer.add_topic('/camera/labels', messages.IMAGE_TYPE)
        # labels are written before their image for frame 2: order in the bag must not matter
        writer.write('/camera/labels', T0, messages.image_cdr(G0, T0, 'cam'))
        writer.write('/camera/image_raw', T0, messages.image_cdr(_image(P0), T0, 'cam'))
        writer.write('/camera/image_raw', T0 + S, messages.image_cdr(_image(P1), T0 + S, 'cam'))
        writer.write('/camera/labels', T0 + S + 5, messages.image_cdr(G2, T0 + 2 * S, 'cam'))
        writer.write('/camera/image_raw', T0 + 2 * S,
                     messages.image_cdr(_image(P2), T0 + 2 * S, 'cam'))
        stray = T0 + 7 * S // 2  # ground truth whose image was never recorded
        writer.write('/camera/labels', stray, messages.image_cdr(G2, stray, 'cam'))


def test_exact_metrics_on_hand_made_bag(tmp_path, three_classes):
    _hand_made_bag(tmp_path / 'bag')
    green = NamedPredictor('green', lambda img: (img[:, :, 1].copy(), {'total': 0.01}))
    # A second "model" that never predicts class c (says a instead): agreement is known.
    no_c = NamedPredictor('no_c', lambda img: (np.where(img[:, :, 1] == 2, 0, img[:, :, 1]),
                                               {'total': 0.02}))
    with BagReader(tmp_path / 'bag') as reader:
        frames = BagFrames(reader, '/camera/image_raw', '/camera/labels')
        evaluation = evaluate_frames(frames, [green, no_c], three_classes, warmup=0,
                                     sample_every=1)
        evaluation.info.frames = frame_accounting(frames.counts, True)
    result = write_outputs(evaluation, tmp_path / 'out')
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['frames'] == {'images': 3, 'with_ground_truth': 2, 'without_ground_truth': 1,
                                'ground_truth_without_image': 1}
    model = report['models'][0]
    assert model['confusion_matrix'] == EXPECTED_MATRIX
    assert model['frames'] == 3 and model['frames_scored'] == 2
    for name, iou in EXPECTED_IOU.items():
        assert model['accuracy']['iou'][name] == pytest.approx(iou)
    assert model['accuracy']['miou'] == pytest.approx(29 / 42)
    assert model['accuracy']['pixel_accuracy'] == pytest.approx(12 / 14)
    # Class shares over all 3 predictions (24 pixels), and label flips between frames.
    assert model['class_distribution'] == pytest.approx({'a': 6 / 24, 'b': 7 / 24,
                                                         'c': 11 / 24})
    flips = model['temporal_consistency']
    assert flips['pairs'] == 2 and flips['mean_flip_share'] == pytest.approx((5 / 8 + 1) / 2)
    assert model['latency_ms']['total']['count'] == 3
    assert model['fps'] == pytest.approx(100.0)
    # Agreement of no_c against green over the 24 predicted pixels: 13 agree (green's 11
    # 'c' pixels become 'a'); IoU a = 6 / (6 + 17 - 6), b = 1, c = 0.
    agreement = report['agreement'][0]
    assert (agreement['reference'], agreement['candidate']) == ('green', 'no_c')
    assert agreement['pixel_agreement'] == pytest.approx(13 / 24)
    assert agreement['miou'] == pytest.approx((6 / 17 + 1 + 0) / 3)
    # Every output file exists and the Markdown carries the numbers and the frame accounting.
    for name in ('report.md', 'per_class_iou.png', 'confusion_matrix.png',
                 'latency_histogram.png', 'sample_0000.png', 'sample_0002.png'):
        assert (tmp_path / 'out' / name).stat().st_size > 0, name
    text = (tmp_path / 'out' / 'report.md').read_text()
    assert '**mIoU 69.05%**' in text and '| without ground truth | 1 |' in text
    assert any('mIoU 69.05%' in line for line in result['summary'])
    assert '| green | no_c | 45.10% | 54.17% |' in text


def _frames_and_truth(count=3, size=(48, 64)):
    """Small real street frames (demo data, downscaled) with their labels (255 = void)."""
    import cv2
    from bisenet_ros.training.datasets import demo_dataset
    dataset = demo_dataset()
    out = []
    for i in range(count):
        rgb, labels = dataset.load(i * 5)
        out.append((cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA),
                    cv2.resize(labels, size[::-1], interpolation=cv2.INTER_NEAREST)))
    return out


def _checkpoint(path, seed):
    import torch
    from bisenet_ros.model.checkpoint import save_checkpoint
    from bisenet_ros.model.factory import build_model
    torch.manual_seed(seed)
    model = build_model('bisenetv2', 11)
    save_checkpoint(path, model.eval(), load_label_set('camvid'))
    return path


def _confusion(preds, truths, n=11, ignore=11):
    matrix = np.zeros((n, n), np.int64)
    for p, t in zip(preds, truths):
        keep = (t < n) & (t != ignore)
        np.add.at(matrix, (t[keep].astype(int), p[keep].astype(int)), 1)
    return matrix.tolist()


@pytest.mark.slow
def test_cli_two_models_exact_and_agreement(tmp_path):
    """eval-bag with two real checkpoints: each confusion matrix equals the one computed from
    the same models' predictions beforehand, and agreement is B scored against A."""
    from bisenet_ros.inference import Segmenter
    data = _frames_and_truth(2)
    write_frames_bag(lambda i: data[i], range(len(data)), tmp_path / 'bag', start_ns=T0,
                     storage='sqlite3')
    paths = [_checkpoint(tmp_path / f'm{seed}.pt', seed) for seed in (0, 1)]
    predictions = []
    for path in paths:
        with Segmenter(str(path), backend='torch', threads=1) as seg:
            predictions.append([seg.segment(rgb[:, :, ::-1].copy(), bgr=True).labels
                                for rgb, _ in data])
    assert cli_main(['eval-bag', str(tmp_path / 'bag'), '--model', str(paths[0]), '--model',
                     str(paths[1]), '--backend', 'torch', '--threads', '1',
                     '-o', str(tmp_path / 'out'), '--samples', '2']) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    truths = [t for _, t in data]
    for model, preds in zip(report['models'], predictions):
        assert model['confusion_matrix'] == _confusion(preds, truths)
        assert model['backend'] == 'torch' and model['frames_scored'] == 2
    agreement = report['agreement'][0]
    same = sum(int((a == b).sum()) for a, b in zip(*predictions))
    assert agreement['pixel_agreement'] == pytest.approx(same / (2 * 48 * 64))
    assert {'sample_0000.png', 'per_class_iou.png'} <= set(report['files'])


def test_cli_without_ground_truth(tmp_path, capsys):
    data = _frames_and_truth(2)
    write_frames_bag(lambda i: (data[i][0], None), range(2), tmp_path / 'bag', start_ns=T0)
    path = _checkpoint(tmp_path / 'm.pt', 0)
    assert cli_main(['eval-bag', str(tmp_path / 'bag'), '--model', str(path), '--backend',
                     'torch', '--threads', '1', '-o', str(tmp_path / 'out'), '--no-plots']) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    model = report['models'][0]
    assert model['accuracy'] is None and report['frames']['with_ground_truth'] == 0
    assert sum(model['class_distribution'].values()) == pytest.approx(1.0)
    assert model['temporal_consistency']['pairs'] == 1
    assert 'label flips' in capsys.readouterr().out


def test_cli_missing_topic_is_a_clear_error(tmp_path, caplog):
    data = _frames_and_truth(1)
    write_frames_bag(lambda i: data[i], [0], tmp_path / 'bag', start_ns=T0)
    (tmp_path / 'm.pt').write_bytes(b'never loaded: the bag is checked first')
    assert cli_main(['eval-bag', str(tmp_path / 'bag'), '--model', str(tmp_path / 'm.pt'),
                     '--image-topic', '/front/image', '-o', str(tmp_path / 'o')]) == 1
    assert "no topic '/front/image'" in caplog.text
    assert '/camera/image_raw (sensor_msgs/msg/Image, 1 msgs)' in caplog.text


def test_model_backend_pairing(tmp_path):
    """One model with several backends is compared with itself; counts must line up."""
    import argparse
    from bisenet_ros.tools import eval_bag
    parser = argparse.ArgumentParser()
    eval_bag.add_arguments(parser)
    model = tmp_path / 'm.onnx'
    model.write_bytes(b'')
    args = parser.parse_args(['bag', '--model', str(model), '--backend', 'onnxruntime',
                              '--backend', 'tensorrt', '--precision', 'fp16'])
    paths = eval_bag._models(args)
    assert paths == [str(model)] * 2
    assert eval_bag._per_model(args.backend, 2, 'auto', '--backend') == ['onnxruntime',
                                                                         'tensorrt']
    assert eval_bag._per_model(args.precision, 2, 'fp32', '--precision') == ['fp16', 'fp16']
    with pytest.raises(ValueError, match='--backend given 3 times for 2 models'):
        eval_bag._per_model(['a', 'b', 'c'], 2, 'auto', '--backend')
    for bad in (['bag', '--live', '--listen'], ['bag', '--start-node']):
        assert cli_main(['eval-bag'] + bad) == 1


def test_accept_reject_gates():
    from bisenet_ros.evaluation.gates import check_gates
    report = {'models': [{'name': 'fp32', 'accuracy': {'miou': 0.71}},
                         {'name': 'fp16', 'accuracy': {'miou': 0.69}}],
              'agreement': [{'reference': 'fp32', 'candidate': 'fp16', 'miou': 0.97}]}
    assert check_gates(report, 0.95, 0.6) == []
    failures = check_gates(report, 0.98, 0.7)
    assert len(failures) == 2
    assert 'fp16 agrees with fp32 at mIoU 0.97, below 0.98' in failures[0]
    assert 'fp16 reaches mIoU 0.69' in failures[1]
    assert check_gates({'models': [{'name': 'a', 'accuracy': None}]}, None, 0.1)


@pytest.mark.parametrize('other', ['onnxruntime', 'openvino'])
@pytest.mark.slow
def test_cli_same_model_two_backends_agree(tmp_path, other):
    """The accept/reject use case: one model on two runtimes, agreement near 100%."""
    data = _frames_and_truth(1)
    write_frames_bag(lambda i: data[i], [0], tmp_path / 'bag', start_ns=T0)
    path = _checkpoint(tmp_path / 'm.pt', 0)
    assert cli_main(['eval-bag', str(tmp_path / 'bag'), '--model', str(path), '--backend',
                     'torch', '--backend', other, '--threads', '1', '--no-plots',
                     '--samples', '0', '--min-agreement', '0.95', '-o',
                     str(tmp_path / 'out')]) == 0
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert [m['backend'] for m in report['models']] == ['torch', other]
    assert report['agreement'][0]['pixel_agreement'] > 0.99


@pytest.mark.slow
def test_cli_smoothing(tmp_path, capsys):
    """--smoothing W with the packaged model: the labels are the argmax of the moving average
    of the model's softmax (computed here from the torch module itself); W = 1, or a stamp gap
    before every frame, gives the unsmoothed labels exactly."""
    import torch
    from bisenet_ros.model.checkpoint import load_model
    from bisenet_ros.preprocess import preprocess
    from bisenet_ros.resources import default_model_path
    data = _frames_and_truth(3, size=(96, 128))
    write_frames_bag(lambda i: data[i], range(3), tmp_path / 'bag', start_ns=T0, rate_hz=10)
    path = default_model_path()
    module = load_model(path)
    camvid = load_label_set('camvid')
    average, raw, smoothed = None, [], []
    for rgb, _ in data:
        batch, _ = preprocess([rgb], camvid.mean, camvid.std, bgr=False)
        with torch.inference_mode():
            probabilities = torch.softmax(module(torch.from_numpy(batch)), dim=1)[0].numpy()
        raw.append(probabilities.argmax(axis=0))
        average = probabilities if average is None else 0.5 * probabilities + 0.5 * average
        smoothed.append(average.argmax(axis=0))
    assert any((a != b).any() for a, b in zip(raw, smoothed))  # the average changes labels
    truths = [t for _, t in data]
    common = ['eval-bag', str(tmp_path / 'bag'), '--model', str(path), '--backend', 'torch',
              '--threads', '1', '--no-plots', '--samples', '0']
    runs = {'plain': [], 'w1': ['--smoothing', '1'], 'w05': ['--smoothing', '0.5'],
            'gap': ['--smoothing', '0.5', '--smoothing-max-gap', '0.05']}
    reports = {}
    for name, extra in runs.items():
        assert cli_main(common + extra + ['-o', str(tmp_path / name)]) == 0
        reports[name] = json.loads((tmp_path / name / 'report.json').read_text())['models'][0]
    assert reports['plain']['confusion_matrix'] == _confusion(raw, truths)
    for name in ('w1', 'gap'):
        assert reports[name]['confusion_matrix'] == reports['plain']['confusion_matrix']
        assert reports[name]['temporal_consistency'] == \
            reports['plain']['temporal_consistency']
    assert reports['w05']['confusion_matrix'] == _confusion(smoothed, truths)
    flips = [float((a != b).mean()) for a, b in zip(smoothed, smoothed[1:])]
    assert reports['w05']['temporal_consistency']['mean_flip_share'] == \
        pytest.approx(np.mean(flips))
    assert reports['w05']['smoothing'] == 0.5 and 'smoothing 0.5]' in reports['w05']['name']
    assert {'inference', 'smoothing', 'total'} <= set(reports['w05']['latency_ms'])
    assert 'flicker' in capsys.readouterr().out
    for bad, message in [(['--smoothing', '0'], 'weight must be in (0, 1]'),
                         (['--smoothing', '0.5', '--live'], 'applies to the offline'),
                         (['--smoothing', '0.5', '--smoothing-max-gap', '0'], 'max_gap_s')]:
        assert cli_main(common + bad + ['-o', str(tmp_path / 'bad')]) == 1
