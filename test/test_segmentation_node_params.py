"""Node parameters over real DDS: values from a YAML params file, validation at start-up and at
runtime (rejected with a reason), runtime changes of alpha, threshold and output switches, and
model reload without restart (a bad model leaves the old one serving, with the error reported).
"""

import os
import signal

import numpy as np
import pytest
from sensor_msgs.msg import Image
import yaml

from bisenet_ros.image_conversions import image_to_array
from bisenet_ros.inference import Segmenter
from bisenet_ros.ros.clients.node_process import NodeProcess
from ros_harness import (connected_probe, model_status, pattern_image, stamp_ns,
                         write_random_checkpoint)

DOMAIN = 50 + os.getpid() % 20
H, W = 64, 96
IN = '/cam/image'
OUT = '/seg'


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('models')
    bad = folder / 'corrupt.pt'
    bad.write_bytes(b'this is not a checkpoint')
    return {'first': write_random_checkpoint(folder / 'first.pt', seed=0),
            'second': write_random_checkpoint(folder / 'second.pt', seed=5), 'bad': bad}


@pytest.fixture(scope='module')
def segmenters(models):
    return {k: Segmenter(str(models[k]), backend='torch', threads=1)  # as the node: exact
            for k in ('first', 'second')}


@pytest.fixture(scope='module')
def params_file(models, tmp_path_factory):
    path = tmp_path_factory.mktemp('params') / 'segmentation.yaml'
    values = {'model_path': str(models['first']), 'backend': 'torch', 'threads': 1,
              'image_topics': [IN],
              'output_prefix': OUT.strip('/'), 'overlay_alpha': 0.25, 'max_rate': 40.0,
              'publish_confidence': True, 'diagnostics_period': 0.5,
              f'qos_overrides.{IN}.subscription.reliability': 'reliable'}
    path.write_text(yaml.safe_dump({'segmentation_node': {'ros__parameters': values}}))
    return path


@pytest.fixture(scope='module')
def node(params_file):
    proc = NodeProcess({}, DOMAIN, extra_args=['--params-file', str(params_file)])
    yield proc
    proc.stop()  # SIGINT (a no-op when a test already stopped it); kill after 20 s


@pytest.fixture(scope='module')
def probe(node):
    probe = connected_probe(DOMAIN, node, IN, [f'{OUT}/{name}' for name in
                                               ('mask', 'overlay', 'confidence', 'color_mask')])
    yield probe
    probe.close()


def round_trip(probe, image, names=('mask',), timeout=60.0):
    """Publish ``image`` (bgr8); the outputs ``names`` for it as arrays (None if absent)."""
    msg = probe.image_msg(image, 'bgr8')
    stamp = stamp_ns(msg)
    probe.publisher(Image, IN).publish(msg)

    def arrived(name, at=stamp):
        return any(stamp_ns(m) == at for m in probe.received[f'{OUT}/{name}'])
    assert probe.wait_for(lambda: arrived('mask'), timeout), 'no mask'
    # The node publishes every output of a frame before it takes the next: once a later
    # frame's mask is here, an output of this frame that has not come was not published.
    later = probe.image_msg(image, 'bgr8')
    probe.publisher(Image, IN).publish(later)
    assert probe.wait_for(lambda: all(arrived(name) for name in names)
                          or arrived('mask', stamp_ns(later)), timeout), 'no later mask'
    return {name: next((image_to_array(m) for m in probe.received[f'{OUT}/{name}']
                        if stamp_ns(m) == stamp), None) for name in names}


def test_values_come_from_the_yaml_params_file(probe, models, segmenters):
    values = probe.get_parameters(['model_path', 'overlay_alpha', 'max_rate', 'image_topics',
                                   'backend', 'publish_confidence'])
    assert values == {'model_path': str(models['first']), 'overlay_alpha': 0.25,
                      'max_rate': 40.0, 'image_topics': [IN], 'backend': 'torch',
                      'publish_confidence': True}
    image = pattern_image(H, W, seed=1)
    out = round_trip(probe, image, ('mask', 'overlay', 'confidence'))
    expected = segmenters['first'].segment(image, overlay=True, confidence=True,
                                           overlay_alpha=0.25)
    np.testing.assert_array_equal(out['mask'], expected.labels)
    np.testing.assert_array_equal(out['overlay'], expected.overlay)
    np.testing.assert_allclose(out['confidence'], expected.confidence, atol=1e-6)


@pytest.mark.parametrize('name,value,reason', [
    ('max_rate', -1.0, 'max_rate'), ('overlay_alpha', 2.0, 'overlay_alpha'),
    ('backend', 'caffe', 'must be one of auto, torch, onnxruntime, openvino, tensorrt'),
    ('input_size', [16, 16], 'each of height, width must be in 32..8192'),
    ('image_topics', ['/other/image'], 'read-only')])
def test_invalid_runtime_values_are_rejected_with_a_reason(probe, name, value, reason):
    result = probe.set_parameters({name: value})[0]
    assert not result.successful and reason in result.reason


def test_runtime_changes_apply_to_the_next_frame(probe, segmenters):
    changes = {'overlay_alpha': 0.8, 'confidence_threshold': 0.3, 'publish_color_mask': False}
    assert all(r.successful for r in probe.set_parameters(changes))
    image = pattern_image(H, W, seed=2)
    out = round_trip(probe, image, ('mask', 'overlay', 'color_mask'))
    expected = segmenters['first'].segment(image, overlay=True, overlay_alpha=0.8,
                                           confidence_threshold=0.3)
    ignore = segmenters['first'].label_set.ignore_index
    assert (expected.labels == ignore).any()  # the threshold takes effect on this image
    np.testing.assert_array_equal(out['mask'], expected.labels)
    np.testing.assert_array_equal(out['overlay'], expected.overlay)
    assert out['color_mask'] is None
    restore = {'overlay_alpha': 0.25, 'confidence_threshold': 0.0, 'publish_color_mask': True}
    assert all(r.successful for r in probe.set_parameters(restore))


def test_model_reload_and_a_bad_model_keeps_the_old_one_serving(probe, node, models,
                                                                segmenters):
    image = pattern_image(H, W, seed=3)
    first, second = (segmenters[k].segment(image).labels for k in ('first', 'second'))
    assert not np.array_equal(first, second)  # the two models are told apart
    result = probe.set_parameters({'model_path': str(models['second'])})[0]
    assert result.successful, result.reason
    assert probe.wait_for(lambda: newest_model_status(probe)[2].get('model_path')
                          == str(models['second']), 60)
    np.testing.assert_array_equal(round_trip(probe, image)['mask'], second)

    # The bad file exists: accepted, loaded on the loader thread, refused there; the parameter
    # goes back to the serving model (test_model_holder.py covers the reload in detail).
    result = probe.set_parameters({'model_path': str(models['bad'])})[0]
    assert result.successful
    assert probe.wait_for(lambda: 'reload failed' in newest_model_status(probe)[1], 60)
    level, message, _ = newest_model_status(probe)
    assert level == 1 and str(models['bad']) in message and 'still serving' in message
    # A missing file too: the parameter callback opens no file (issue 23), the loader does.
    missing = probe.set_parameters({'model_path': '/nonexistent/model.pt'})[0]
    assert missing.successful, missing.reason
    assert probe.wait_for(lambda: "'/nonexistent/model.pt' not found"
                          in newest_model_status(probe)[2].get('last_reload_error', ''), 60)
    assert probe.wait_for(lambda: probe.get_parameters(['model_path'])['model_path']
                          == str(models['second']), 20)
    np.testing.assert_array_equal(round_trip(probe, image)['mask'], second)
    assert node.alive()


def newest_model_status(probe):
    """``(level, message, values)`` of the model in the newest /diagnostics message
    (``(None, '', {})`` before the first one)."""
    if not probe.received['/diagnostics']:
        return None, '', {}
    return model_status(probe.received['/diagnostics'][-1])


def test_sigint_shuts_the_node_down_cleanly(node, probe):
    code = node.stop(signal.SIGINT)
    assert code == 0, node.log()[-2000:]
    assert 'Traceback' not in node.log()


def test_invalid_parameters_at_start_exit_with_a_reason(models):
    with NodeProcess({'model_path': str(models['first']), 'max_rate': -5.0,
                      'backend': 'caffe'}, DOMAIN - 20) as proc:
        assert proc.proc.wait(90) == 2
    log = proc.log()
    assert 'invalid parameters' in log and 'max_rate' in log
