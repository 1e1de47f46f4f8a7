"""Live evaluation: the bag replayed through the real segmentation node (separate process, real
rclpy and DDS), masks matched to ground truth by stamp, compared with the same model offline."""

import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from bisenet_ros.bags.make import write_frames_bag

REPO = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000 * 10**9

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec('bisenet_ros.ros.segmentation_node') is None,
    reason='segmentation node module not written yet')


def _data(count=3, size=(48, 64)):
    import cv2
    from bisenet_ros.training.datasets import demo_dataset
    dataset = demo_dataset()
    out = []
    for i in range(count):
        rgb, labels = dataset.load(i * 4)
        out.append((cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA),
                    cv2.resize(labels, size[::-1], interpolation=cv2.INTER_NEAREST)))
    return out


def _checkpoint(path):
    import torch
    from bisenet_ros.labels import load_label_set
    from bisenet_ros.model.checkpoint import save_checkpoint
    from bisenet_ros.model.factory import build_model
    torch.manual_seed(3)
    save_checkpoint(path, build_model('bisenetv2', 11).eval(), load_label_set('camvid'))
    return path


def _env(tmp_path):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO)] + [p for p in env.get('PYTHONPATH', '')
                                                       .split(os.pathsep) if p])
    env.setdefault('ROS_LOG_DIR', str(tmp_path / 'ros_log'))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return env


@pytest.mark.slow
def test_live_replay_through_node_matches_offline(tmp_path):
    data = _data()
    # The last frame has no ground truth: it is replayed and segmented but not scored.
    write_frames_bag(lambda i: (data[i][0], data[i][1] if i < 2 else None), range(3),
                     tmp_path / 'bag', rate_hz=5.0, start_ns=T0)
    model = _checkpoint(tmp_path / 'model.pt')
    cmd = [sys.executable, '-m', 'bisenet_ros.cli', 'eval-bag', str(tmp_path / 'bag'),
           '--live', '--start-node', '--model', str(model), '--backend', 'torch',
           '--threads', '1', '--max-in-flight', '1', '--samples', '3', '--drain', '20',
           '-o', str(tmp_path / 'out')]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=400)
    node_log = tmp_path / 'out' / 'node.log'
    assert proc.returncode == 0, (proc.stdout + proc.stderr
                                  + (node_log.read_text() if node_log.exists() else ''))
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    frames = report['frames']
    assert frames['images'] == 3 and frames['with_ground_truth'] == 2
    assert frames['without_ground_truth'] == 1
    assert frames['sent'] == 3 and frames['masks_received'] + frames['dropped'] == 3
    assert frames['masks_for_unknown_stamps'] == 0  # the warm-up frame is not counted
    assert frames['masks_received'] == 3, 'paced replay of tiny frames lost a mask'
    node = report['models'][0]
    assert report['source']['mode'] == 'live replay'
    latency = node['latency_ms']['end_to_end']
    assert latency['count'] == 3 and 0 < latency['p50_ms'] <= latency['max_ms']
    # The node's masks are the model's own predictions: same confusion matrix as offline.
    from bisenet_ros.inference import Segmenter
    expected = np.zeros((11, 11), np.int64)
    with Segmenter(str(model), backend='torch', threads=1) as seg:
        for rgb, truth in data[:2]:
            pred = seg.segment(np.ascontiguousarray(rgb[:, :, ::-1]), bgr=True).labels
            keep = truth < 11
            np.add.at(expected, (truth[keep].astype(int), pred[keep].astype(int)), 1)
    assert node['confusion_matrix'] == expected.tolist()
    assert node['frames_scored'] == 2 and node['frames'] == 3
    for name in ('report.md', 'latency_histogram.png', 'sample_0000.png'):
        assert (tmp_path / 'out' / name).is_file(), name
    assert 'segmentation_node: mIoU' in proc.stdout


def test_live_without_node_fails_clearly(tmp_path):
    data = _data(1)
    write_frames_bag(lambda i: data[i], [0], tmp_path / 'bag', start_ns=T0)
    env = _env(tmp_path)
    env['ROS_DOMAIN_ID'] = '211'  # nobody there
    proc = subprocess.run([sys.executable, '-m', 'bisenet_ros.cli', 'eval-bag',
                           str(tmp_path / 'bag'), '--live', '--connect-timeout', '2',
                           '--label-set', 'camvid', '-o', str(tmp_path / 'out')],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert '0 subscriber(s) on /camera/image_raw' in proc.stderr
    assert 'is the segmentation node running' in proc.stderr


def test_live_options_are_what_the_command_line_says():
    """The CLI parses into the typed :class:`LiveOptions` the demo builds itself."""
    import argparse
    from bisenet_ros.tools.eval_bag import BagSource, LiveOptions, add_arguments
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert LiveOptions.from_args(parser.parse_args(['b', '--live'])) == LiveOptions(
        BagSource('b'))
    args = parser.parse_args(['b', '--live', '--start-node', '--model', 'm.pt', '--model', 'n.pt',
                              '--backend', 'torch', '--precision', 'fp16', '--threads', '2',
                              '--input-size', '96', '128', '--device', 'cuda:1', '--rate-scale',
                              '2', '--max-in-flight', '1', '--connect-timeout', '30', '--drain',
                              '7', '--no-labels', '--match-window', '3', '--limit', '4',
                              '--stamp-tolerance-ms', '5', '--reader', 'rosbags',
                              '--image-topic', '/cam/compressed', '--label-topic', '/gt',
                              '--mask-topic', '/m', '--label-set', 'camvid', '--samples', '4',
                              '--no-plots', '--no-progress', '-o', 'out'])
    assert LiveOptions.from_args(args) == LiveOptions(
        BagSource('b', reader='rosbags', image_topic='/cam/compressed', label_topic='/gt',
                  labels=False, stamp_tolerance_ms=5.0, match_window_s=3.0, limit=4),
        model='m.pt', label_set='camvid', start_node=True, backend='torch', precision='fp16',
        device='cuda:1', threads=2, input_size=(96, 128), rate_scale=2.0, max_in_flight=1,
        mask_topic='/m', connect_timeout_s=30.0, drain_s=7.0, output='out', samples=4,
        plots=False, progress=False)
    with pytest.raises(ValueError, match='start_node .* listen'):
        LiveOptions(BagSource('b'), start_node=True, listen=True)


def test_live_typed_call_without_node_fails_clearly(tmp_path, monkeypatch):
    """The demo's path: :func:`run_live` called with typed options, no argv."""
    from bisenet_ros.ros.clients.replay import ReplayError
    from bisenet_ros.tools.eval_bag import BagSource, LiveOptions, run_live
    data = _data(1)
    write_frames_bag(lambda i: data[i], [0], tmp_path / 'bag', start_ns=T0)
    monkeypatch.setenv('ROS_DOMAIN_ID', '211')  # nobody there
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)  # run_live may set it
    with pytest.raises(ReplayError, match=r'0 subscriber\(s\) on /camera/image_raw'):
        run_live(LiveOptions(BagSource(str(tmp_path / 'bag')), label_set='camvid',
                             connect_timeout_s=1.0, output=str(tmp_path / 'out')))


@pytest.mark.slow
def test_listen_while_someone_else_plays_the_bag(tmp_path):
    """--listen: the node runs, a player publishes the bag's images (here a probe standing in
    for `ros2 bag play`), eval-bag only listens and scores what it saw."""
    from sensor_msgs.msg import Image
    from bisenet_ros.ros.clients.node_process import NodeProcess
    from ros_harness import Probe
    data = _data(2)
    write_frames_bag(lambda i: data[i], range(2), tmp_path / 'bag', start_ns=T0)
    model = _checkpoint(tmp_path / 'model.pt')
    domain = 187
    env = _env(tmp_path)
    env['ROS_DOMAIN_ID'] = str(domain)
    params = {'model_path': str(model), 'backend': 'torch', 'threads': 1,
              'publish_color_mask': False, 'publish_overlay': False}
    listener_log = tmp_path / 'listener.log'
    with NodeProcess(params, domain, log_path=tmp_path / 'node.log') as node, \
            open(listener_log, 'w') as log_file:
        listener = subprocess.Popen(
            [sys.executable, '-m', 'bisenet_ros.cli', 'eval-bag', str(tmp_path / 'bag'),
             '--listen', '--label-set', 'camvid', '-o', str(tmp_path / 'out')],
            env=env, stdout=log_file, stderr=subprocess.STDOUT)
        probe = Probe(domain, name='bag_player')
        try:
            probe.subscribe(Image, '/segmentation/mask')
            pub = probe.publisher(Image, '/camera/image_raw')
            assert probe.wait_for_subscribers('/camera/image_raw', 2, timeout=120), node.log()
            # Discovery is not symmetric: our writer can see the listener's reader before the
            # listener has matched our writer (or the node's mask writer), and its readers would
            # miss the frames or masks. The listener says when it sees both writers, and the
            # mask topic shows both of its readers.
            assert probe.wait_for(lambda: 'listening: 1 publisher(s) on /camera/image_raw, 1 on '
                                  '/segmentation/mask' in listener_log.read_text(), 120), \
                listener_log.read_text()
            assert probe.wait_for(
                lambda: probe.node.count_subscribers('/segmentation/mask') >= 2, 120), node.log()
            for i, (rgb, _) in enumerate(data):
                msg = probe.image_msg(np.ascontiguousarray(rgb[:, :, ::-1]), 'bgr8',
                                      stamp_ns=T0 + i * 10**8)
                stamp = T0 + i * 10**8
                for _ in range(60):  # the first frame may arrive while the model loads
                    pub.publish(msg)
                    if probe.wait_for(lambda: any(
                            m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp
                            for m in probe.received['/segmentation/mask']), 2.0):
                        break
            listener.wait(timeout=120)
        finally:
            probe.close()
            if listener.poll() is None:
                listener.kill()
    assert listener.returncode == 0, listener_log.read_text() + node.log()
    report = json.loads((tmp_path / 'out' / 'report.json').read_text())
    assert report['source']['mode'] == 'listen'
    frames = report['frames']
    assert frames['images_seen'] == 2 and frames['masks_received'] == 2
    assert frames['dropped'] == 0
    node_stats = report['models'][0]
    assert node_stats['frames_scored'] == 2
    assert node_stats['latency_ms']['end_to_end']['count'] == 2
