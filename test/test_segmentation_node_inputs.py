"""Two compressed cameras served by one node over real DDS (tests run in file order).

The node starts without a usable model (reported, node keeps running) and gets one at runtime;
outputs nobody subscribes to cost nothing; both cameras' frames share one inference call and
come back under their own namespaces with camera_info; jpeg and png input; a model with more
than 255 classes (loaded at runtime) gives mono16 masks.
"""

import json
import os
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from bisenet_ros.image_conversions import image_to_array
from bisenet_ros.inference import Segmenter
from bisenet_ros.ros.clients.node_process import NodeProcess
from ros_harness import pattern_image, Probe, stamp_ns, write_random_checkpoint

DOMAIN = 70 + os.getpid() % 20
H, W = 64, 96
CAMERAS = ('cam_left', 'cam_right')
MISSING = '/nonexistent/start_model.pt'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp('model') / 'random.pt', seed=2)


@pytest.fixture(scope='module')
def segmenter(checkpoint):
    return Segmenter(str(checkpoint), backend='torch', threads=1)  # as the node: exact


@pytest.fixture(scope='module')
def node():
    proc = NodeProcess({'model_path': MISSING, 'backend': 'torch', 'threads': 1,
                        'compressed': True,
                        'image_topics': [f'/{c}/image_raw' for c in CAMERAS],
                        'use_camera_info': True, 'batch_wait': 3.0,
                        'diagnostics_period': 0.5}, DOMAIN)
    yield proc
    proc.stop()  # SIGINT (a no-op when a test already stopped it); kill after 20 s


@pytest.fixture(scope='module')
def probe(node):
    probe = Probe(DOMAIN)
    probe.subscribe(DiagnosticArray, '/diagnostics')
    probe.subscribe(Image, '/segmentation/cam_left/mask')
    for cam in CAMERAS:
        probe.publisher(CompressedImage, f'/{cam}/image_raw/compressed')
        probe.publisher(CameraInfo, f'/{cam}/camera_info')
    assert probe.wait_for_subscribers('/cam_right/image_raw/compressed', timeout=90), node.log()
    assert probe.wait_for_subscribers('/cam_left/camera_info', timeout=30)
    yield probe
    probe.close()


def compressed(probe, cam, image, ext='.png'):
    """``(message, decoded image)``: ``image`` encoded as ``ext``, stamped now, from ``cam``."""
    ok, buf = cv2.imencode(ext, image)
    assert ok
    msg = CompressedImage(format=ext[1:], data=buf.tobytes())
    msg.header = probe.image_msg(np.zeros((1, 1), np.uint8), 'mono8', f'{cam}_optical').header
    return msg, cv2.imdecode(buf, cv2.IMREAD_COLOR)


def send(probe, cam, image, ext='.png'):
    msg, decoded = compressed(probe, cam, image, ext)
    probe.publisher(CompressedImage, f'/{cam}/image_raw/compressed').publish(msg)
    return stamp_ns(msg), decoded


def status(probe, suffix, after):
    """Key/values and level of the status whose name ends with ``suffix``, reported after
    ``after`` (monotonic seconds)."""
    assert probe.wait_for(lambda: probe.receive_times['/diagnostics'] and
                          probe.receive_times['/diagnostics'][-1] > after, 10)
    msg = probe.received['/diagnostics'][-1]
    found = next(s for s in msg.status if s.name.endswith(suffix))
    return found.level[0], found.message, {kv.key: kv.value for kv in found.values}


def test_missing_model_is_reported_and_a_model_can_be_set_at_runtime(probe, node, checkpoint):
    level, message, _ = status(probe, 'model', time.monotonic())
    assert level == 2 and MISSING in message and 'model_path:=' in message
    assert f"model file '{MISSING}' not found" in node.log()
    result = probe.set_parameters({'model_path': str(checkpoint)})[0]
    assert result.successful, result.reason
    probe.subscribe(String, '/segmentation/class_info', latched=True)
    assert probe.wait_for(lambda: probe.received['/segmentation/class_info'], 20)
    assert json.loads(probe.received['/segmentation/class_info'][-1].data)['num_classes'] == 11


def test_outputs_without_subscribers_cost_nothing(probe):
    start = time.monotonic()
    calls = int(status(probe, 'model', start)[2]['inference_calls'])
    send(probe, 'cam_right', pattern_image(H, W, seed=1))  # nobody listens to cam_right's outputs
    assert probe.wait_for(
        lambda: int({kv.key: kv.value for kv in next(
            s for s in probe.received['/diagnostics'][-1].status
            if s.name.endswith('cam_right/image_raw/compressed')).values}
            ['frames_skipped_no_subscribers']) >= 1, 20)
    _, _, right = status(probe, 'cam_right/image_raw/compressed', time.monotonic())
    assert right['frames_published'] == '0'
    assert int(status(probe, 'model', time.monotonic())[2]['inference_calls']) == calls


def test_two_cameras_share_one_inference_call_and_keep_their_namespaces(probe, segmenter):
    probe.subscribe(Image, '/segmentation/cam_right/mask')
    probe.subscribe(CameraInfo, '/segmentation/cam_left/camera_info')
    assert probe.wait_for(lambda: probe.node.count_subscribers('/segmentation/cam_right/mask')
                          and probe.node.count_publishers('/segmentation/cam_right/mask'), 20)
    info = CameraInfo(width=W, height=H, distortion_model='plumb_bob')
    info.k = [50.0, 0.0, W / 2, 0.0, 50.0, H / 2, 0.0, 0.0, 1.0]
    info_pub = probe.publisher(CameraInfo, '/cam_left/camera_info')
    assert probe.wait_for_subscribers('/cam_left/camera_info', timeout=20)  # else it is lost
    info_pub.publish(info)  # kept by the node; cam_right's round trip below comes after it
    # cam_right becomes an active camera (the node waits batch_wait only for active ones)
    probe.reply_to(probe.publisher(CompressedImage, '/cam_right/image_raw/compressed'),
                   compressed(probe, 'cam_right', pattern_image(H, W, seed=2))[0],
                   '/segmentation/cam_right/mask')
    images = {cam: pattern_image(H, W, seed=i + 3) for i, cam in enumerate(CAMERAS)}
    sent = {cam: send(probe, cam, images[cam], '.png') for cam in CAMERAS}
    for cam in CAMERAS:
        stamp, decoded = sent[cam]
        np.testing.assert_array_equal(decoded, images[cam])  # png is lossless
        topic = f'/segmentation/{cam}/mask'
        assert probe.wait_for(lambda: any(stamp_ns(m) == stamp for m in probe.received[topic]),
                              60), f'no {topic}'
        mask = next(m for m in probe.received[topic] if stamp_ns(m) == stamp)
        assert mask.header.frame_id == f'{cam}_optical' and mask.encoding == 'mono8'
        np.testing.assert_array_equal(image_to_array(mask), segmenter.segment(decoded).labels)
    _, _, model = status(probe, 'model', time.monotonic())
    assert model['largest_batch'] == '2'
    left_stamp = sent['cam_left'][0]
    topic = '/segmentation/cam_left/camera_info'
    assert probe.wait_for(lambda: any(stamp_ns(m) == left_stamp
                                      for m in probe.received[topic]), 10)
    out_info = next(m for m in probe.received[topic] if stamp_ns(m) == left_stamp)
    assert out_info.header.frame_id == 'cam_left_optical'
    assert (out_info.width, out_info.height) == (W, H) and list(out_info.k) == list(info.k)


def test_jpeg_input(probe, segmenter):
    stamp, decoded = send(probe, 'cam_left', pattern_image(H, W, seed=7), '.jpg')
    topic = '/segmentation/cam_left/mask'
    assert probe.wait_for(lambda: any(stamp_ns(m) == stamp for m in probe.received[topic]), 60)
    mask = next(m for m in probe.received[topic] if stamp_ns(m) == stamp)
    np.testing.assert_array_equal(image_to_array(mask), segmenter.segment(decoded).labels)


def test_a_small_camera_is_published_before_a_big_one_of_the_same_round(probe):
    """Both frames are taken together (batch_wait 3 s); the small camera's call runs first and
    its mask goes out without waiting for the big frame (was: camera order, after both)."""
    small_topic = '/segmentation/cam_right/mask'
    big_topic = '/segmentation/cam_left/mask'

    def arrival(topic, stamp):
        return next((t for m, t in zip(probe.received[topic], probe.receive_times[topic])
                     if stamp_ns(m) == stamp), None)
    # Both cameras active (the node waits batch_wait only for cameras that sent lately).
    warm = [send(probe, cam, pattern_image(H, W, seed=8))[0] for cam in CAMERAS]
    assert probe.wait_for(lambda: arrival(big_topic, warm[0]) and arrival(small_topic, warm[1]),
                          60)
    big, _ = send(probe, 'cam_left', pattern_image(360, 640, seed=9), '.jpg')  # < 0.5 MB
    small, _ = send(probe, 'cam_right', pattern_image(H, W, seed=9))
    assert probe.wait_for(lambda: arrival(small_topic, small) and arrival(big_topic, big), 120)
    assert arrival(small_topic, small) < arrival(big_topic, big)


def test_more_than_255_classes_give_a_mono16_mask(probe, tmp_path):
    model = write_random_checkpoint(tmp_path / 'classes300.pt', seed=1, num_classes=300)
    result = probe.set_parameters({'model_path': str(model)})[0]
    assert result.successful, result.reason
    assert probe.wait_for(lambda: json.loads(probe.received['/segmentation/class_info'][-1]
                                             .data)['num_classes'] == 300, 20)
    info = json.loads(probe.received['/segmentation/class_info'][-1].data)
    assert info['mask_encoding'] == 'mono16'
    stamp, decoded = send(probe, 'cam_left', pattern_image(H, W, seed=8))
    topic = '/segmentation/cam_left/mask'
    assert probe.wait_for(lambda: any(stamp_ns(m) == stamp for m in probe.received[topic]), 60)
    mask = next(m for m in probe.received[topic] if stamp_ns(m) == stamp)
    assert mask.encoding == 'mono16' and mask.step == 2 * W
    expected = Segmenter(str(model), backend='torch', threads=1).segment(decoded).labels
    assert expected.dtype == np.uint16
    np.testing.assert_array_equal(image_to_array(mask), expected)
