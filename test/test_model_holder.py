"""Model reload off the executor, over real DDS (tests run in file order, one node).

A reload (here: torch -> onnxruntime at 512x1024, whose ONNX export takes seconds) runs on the
model's loader thread: masks keep flowing from the old model and parameter gets answer while
``/diagnostics`` still says the reload is in progress. Two reloads in quick succession end with
the last one; a reload that fails keeps the old model serving, reports the reason and puts the
parameters back to the serving model's values.
"""

import math
import os
import statistics
import threading
import time

import numpy as np
import pytest
from rcl_interfaces.srv import GetParameters
from rclpy.parameter import parameter_value_to_python
from sensor_msgs.msg import Image
from test_model_check import channels_last_logits
import torch

from bisenet_ros.export.onnx_export import export_onnx
from bisenet_ros.inference import Segmenter
from bisenet_ros.model import load_model, save_checkpoint
from bisenet_ros.image_conversions import image_to_array
from bisenet_ros.ros.clients.node_process import NodeProcess
from ros_harness import (connected_probe, model_status, pattern_image, stamp_ns,
                         write_random_checkpoint)

DOMAIN = 110 + os.getpid() % 20
H, W = 64, 96
IN = '/front/image_raw'
OUT = '/front_seg'


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """Three random checkpoints and a truncated copy of the first ('bad')."""
    folder = tmp_path_factory.mktemp('reload_models')
    found = {name: write_random_checkpoint(folder / f'{name}.pt', seed=seed)
             for name, seed in (('first', 0), ('second', 5), ('third', 9))}
    found['bad'] = folder / 'truncated.pt'
    found['bad'].write_bytes(found['first'].read_bytes()[:100_000])
    return found


@pytest.fixture(scope='module')
def node(models):
    proc = NodeProcess({'model_path': str(models['first']), 'backend': 'torch', 'threads': 1,
                        'image_topics': [IN], 'output_prefix': OUT.strip('/'),
                        'publish_overlay': False, 'publish_color_mask': False,
                        'diagnostics_period': 0.2}, DOMAIN,
                       extra_args=['-p', f'qos_overrides.{IN}.subscription.reliability:='
                                   'reliable'])
    yield proc
    proc.stop()


@pytest.fixture(scope='module')
def probe(node):
    probe = connected_probe(DOMAIN, node, IN, [f'{OUT}/mask'])
    yield probe
    probe.close()


def next_model_status(probe, after, timeout=30.0):
    """The model status of the first /diagnostics message received after ``after``."""
    def index():
        return next((i for i, t in enumerate(probe.receive_times['/diagnostics']) if t > after),
                    None)
    assert probe.wait_for(lambda: index() is not None, timeout), 'no /diagnostics'
    i = index()
    return probe.receive_times['/diagnostics'][i], model_status(probe.received['/diagnostics'][i])


def wait_reload_idle(probe, timeout=300.0):
    """Wait for a /diagnostics message saying no reload is in progress; its model status."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        received, status = next_model_status(probe, time.monotonic())
        if status[2]['reload'] != 'in progress':
            return status
    raise AssertionError('the reload did not end')


def mask_for(probe, image, timeout=60.0):
    msg = probe.reply_to(probe.publisher(Image, IN), probe.image_msg(image, 'bgr8'),
                         f'{OUT}/mask', timeout)
    return image_to_array(msg)


def expected(models, name, image):
    with Segmenter(str(models[name]), backend='torch', threads=1) as seg:
        return seg.segment(image).labels


class Camera:
    """Publishes a frame every 50 ms on a thread; records when each stamp was sent."""

    def __init__(self, probe):
        self.probe, self.sent = probe, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        image = pattern_image(H, W, seed=4)
        while not self._stop.is_set():
            msg = self.probe.image_msg(image, 'bgr8')
            self.probe.publisher(Image, IN).publish(msg)
            self.sent[stamp_ns(msg)] = time.monotonic()
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._thread.join()


def test_reload_runs_off_the_executor(probe, node):
    """Masks flow and gets answer while /diagnostics says the slow reload is in progress."""
    client = probe.node.create_client(GetParameters, '/segmentation_node/get_parameters')
    assert client.wait_for_service(timeout_sec=30)
    mask_for(probe, pattern_image(H, W, seed=1))  # the first model serves
    camera = Camera(probe)
    try:
        result = probe.set_parameters({'backend': 'onnxruntime', 'input_size': [512, 1024]})[0]
        asked = time.monotonic()
        assert result.successful, result.reason
        round_trips = []
        for _ in range(9):
            t0 = time.monotonic()
            future = client.call_async(GetParameters.Request(names=['backend']))
            assert probe.wait_for(future.done, 20), 'get_parameters did not answer'
            round_trips.append(time.monotonic() - t0)
            value = parameter_value_to_python(future.result().values[0])
            assert value == 'onnxruntime'  # the parameter holds the requested value at once
        answered = time.monotonic()
        # The event order proves the gets were answered during the reload: a /diagnostics
        # message sent after the last answer still reports the reload in progress.
        seen, (level, message, values) = next_model_status(probe, answered)
        assert values['reload'] == 'in progress', (values, node.log()[-3000:])
        assert values['backend'] == 'torch' and values['reload_target'] == values['model_path']
        assert 'reloading' in message and level == 0

        def masks_since_asked():
            masks = [stamp_ns(m) for m in probe.received[f'{OUT}/mask']]
            return [s for s in masks if s in camera.sent and asked < camera.sent[s]]

        # Masks keep flowing: three of frames sent after the request arrive, and a /diagnostics
        # message sent after the third still reports the reload in progress.
        assert probe.wait_for(lambda: len(masks_since_asked()) >= 3, 30), \
            f'{len(masks_since_asked())} masks after the reload was asked for'
        _, (_, _, values) = next_model_status(probe, time.monotonic())
        assert values['reload'] == 'in progress', (values, node.log()[-3000:])
        level, message, values = wait_reload_idle(probe)
        assert values['backend'] == 'onnxruntime' and values['input_size'] == '512x1024', \
            (message, node.log()[-3000:])
        assert values['reload'] == 'idle' and level == 0
    finally:
        camera.stop()
        probe.node.destroy_client(client)
    median_ms = 1000 * statistics.median(round_trips)
    print(f'get_parameters during the reload: median {median_ms:.1f} ms, '
          f'max {1000 * max(round_trips):.1f} ms over {len(round_trips)}')
    assert median_ms < 100  # the figure, taken as the median of several gets


def test_two_reloads_in_quick_succession_end_with_the_last(probe, models):
    image = pattern_image(H, W, seed=2)
    assert probe.set_parameters({'backend': 'torch', 'input_size': [0, 0],
                                 'model_path': str(models['second'])})[0].successful
    assert probe.set_parameters({'model_path': str(models['third'])})[0].successful
    level, message, values = wait_reload_idle(probe)
    assert values['model_path'] == str(models['third']) and values['backend'] == 'torch'
    assert probe.get_parameters(['model_path'])['model_path'] == str(models['third'])
    np.testing.assert_array_equal(mask_for(probe, image), expected(models, 'third', image))


def test_a_failed_reload_keeps_the_old_model_and_puts_the_parameters_back(probe, node, models):
    image = pattern_image(H, W, seed=3)
    result = probe.set_parameters({'model_path': str(models['bad'])})[0]
    assert result.successful, result.reason  # exists, kind known: loaded on the loader thread
    level, message, values = wait_reload_idle(probe)
    assert values['reload'] == 'failed' and level == 1
    assert str(models['bad']) in values['last_reload_error']
    assert f"still serving {models['third']}" in message
    assert probe.wait_for(lambda: probe.get_parameters(['model_path'])['model_path']
                          == str(models['third']), 20), node.log()[-3000:]
    np.testing.assert_array_equal(mask_for(probe, image), expected(models, 'third', image))
    log = node.log()
    assert f"cannot load model '{models['bad']}'" in log and 'parameters set back' in log
    # A missing file is judged on the loader thread too (the parameter callback opens no
    # file): accepted, refused there, the parameters set back.
    missing = probe.set_parameters({'model_path': '/nonexistent/model.pt'})[0]
    assert missing.successful, missing.reason
    level, message, values = wait_reload_idle(probe)
    assert "'/nonexistent/model.pt' not found" in values['last_reload_error'], values
    assert probe.wait_for(lambda: probe.get_parameters(['model_path'])['model_path']
                          == str(models['third']), 20), node.log()[-3000:]
    assert node.alive()


def test_broken_candidates_are_refused_and_the_old_model_serves(probe, node, models, tmp_path):
    """Validate before swap: NaN weights (caught by the test run) and channels-last logits
    (caught by the layout check) never replace the serving model."""
    module = load_model(models['third'])
    with torch.no_grad():
        next(p for p in module.parameters() if p.ndim == 4)[0, 0, 0, 0] = math.nan
    nan = save_checkpoint(tmp_path / 'nan.pt', module, module.label_set)
    nhwc = channels_last_logits(export_onnx(load_model(models['third']), tmp_path / 'm.onnx',
                                            (H, W), outputs=('logits', 'labels')),
                                tmp_path / 'nhwc.onnx')
    image = pattern_image(H, W, seed=6)
    for path, reason in ((nan, 'non-finite values'), (nhwc, 'channels-last output logits')):
        assert probe.set_parameters({'model_path': str(path)})[0].successful
        level, message, values = wait_reload_idle(probe)
        assert values['reload'] == 'failed' and reason in values['last_reload_error'], values
        assert values['model_path'] == str(models['third']) and level == 1
        np.testing.assert_array_equal(mask_for(probe, image), expected(models, 'third', image))
    assert node.alive()


def test_inference_streams_apply_by_reload_and_need_openvino(probe, node, models):
    """Two OpenVINO streams serve after a reload (``/diagnostics`` says so) and masks keep
    coming; torch asked for two streams is refused, naming the backend, and the parameters are
    set back while OpenVINO keeps serving."""
    image = pattern_image(H, W, seed=7)
    results = probe.set_parameters({'backend': 'openvino', 'precision': 'fp32',
                                    'inference_streams': 2})
    assert all(r.successful for r in results), [r.reason for r in results]
    level, message, values = wait_reload_idle(probe)
    assert (values['backend'], values['inference_streams'], level) == ('openvino', '2', 0), \
        (message, values)
    agreement = (mask_for(probe, image) == expected(models, 'third', image)).mean()
    assert agreement >= 0.99, agreement  # OpenVINO fp32 against torch fp32
    assert probe.set_parameters({'backend': 'torch'})[0].successful
    level, message, values = wait_reload_idle(probe)
    assert 'streams 2: the torch backend runs one inference call at a time' in \
        values['last_reload_error'], values
    assert values['backend'] == 'openvino' and level == 1
    assert probe.wait_for(lambda: probe.get_parameters(['backend'])['backend'] == 'openvino',
                          20), node.log()[-3000:]
    results = probe.set_parameters({'backend': 'torch', 'inference_streams': 0})
    assert all(r.successful for r in results), [r.reason for r in results]
    level, message, values = wait_reload_idle(probe)
    assert (values['backend'], values['inference_streams']) == ('torch', '1'), values
    np.testing.assert_array_equal(mask_for(probe, image), expected(models, 'third', image))
    assert node.alive()


# Without a ROS graph: the loader's generations (lifecycle cleanup against a load in flight) ---

class _Built:
    """A stand-in for a Segmenter, built by :func:`_gated_build` (what ModelHolder serves)."""

    def __init__(self, path):
        from bisenet_ros.labels import load_label_set
        self.path, self.closed = path, threading.Event()
        from bisenet_ros.inference.backends.auto_precision import PrecisionChoice
        self.label_set, self.backend_name, self.input_size = load_label_set('camvid'), 'x', None
        self.choice = PrecisionChoice('x', 'fp32', 'a stand-in of this test')
        self.streams = 1

    def close(self):
        self.closed.set()


def _gated_build(gates, built, started):
    """A ModelHolder build function: a path in ``gates`` waits for its event first."""
    def build(p):
        started.add(p.model_path)
        gate = gates.get(p.model_path)
        if gate is not None:
            gate.wait(60.0)
        from bisenet_ros.ros.model_holder import ServingModel
        built[p.model_path] = _Built(p.model_path)
        return ServingModel(built[p.model_path]), None
    return build


def _holder_params(path):
    from bisenet_ros.ros.params import NodeParams
    return NodeParams.from_values({'model_path': path})


@pytest.mark.parametrize('then', ['configure', 'reload', 'nothing'])
def test_a_load_begun_before_cleanup_is_never_swapped_in_after_it(then):
    """(was: a slow reload started before deactivate/cleanup was swapped in after a later
    configure, so the parameters named one model while another served)"""
    from rclpy.logging import get_logger
    from bisenet_ros.ros.model_holder import ModelHolder
    slow = threading.Event()
    built, started = {}, set()
    holder = ModelHolder(get_logger('test_model_holder'),
                         build=_gated_build({'/slow.pt': slow}, built, started))
    assert holder.load(_holder_params('/first.pt')) is None
    holder.request(_holder_params('/slow.pt'))  # starts loading, blocked on its gate
    assert _wait(lambda: '/slow.pt' in started)
    holder.close()  # lifecycle cleanup while /slow.pt loads
    if then == 'configure':
        assert holder.load(_holder_params('/second.pt')) is None
    elif then == 'reload':
        assert holder.load(_holder_params('/second.pt')) is None
        holder.request(_holder_params('/third.pt'))
    slow.set()
    assert _wait(lambda: '/slow.pt' in built and built['/slow.pt'].closed.is_set())
    expected = {'configure': '/second.pt', 'reload': '/third.pt', 'nothing': None}[then]
    assert _wait(lambda: (holder.serving.model_path if holder.serving else None) == expected)
    holder.close()


def _wait(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_inference_streams_share_the_model_and_a_swap_waits_for_them():
    """Two inference streams hold the serving model at once; a reload's swap waits until both
    released it, and a call that starts while the swap waits waits behind it."""
    from rclpy.logging import get_logger
    from bisenet_ros.ros.model_holder import ModelHolder
    built, started = {}, set()
    holder = ModelHolder(get_logger('test_model_holder'), build=_gated_build({}, built, started))
    assert holder.load(_holder_params('/first.pt')) is None
    held = []
    streams = [threading.Thread(target=lambda: held.append(holder.acquire())) for _ in range(2)]
    for thread in streams:
        thread.start()
    for thread in streams:
        thread.join(10.0)
    assert len(held) == 2 and all(s is held[0] for s in held)  # both at once, neither waited
    holder.request(_holder_params('/second.pt'))
    assert _wait(lambda: '/second.pt' in built)
    late = []
    caller = threading.Thread(target=lambda: late.append(holder.acquire()))
    time.sleep(0.3)  # the loader is at the swap now, waiting for the two streams
    caller.start()
    caller.join(0.3)
    assert holder.serving.model_path == '/first.pt' and not late
    holder.release()
    time.sleep(0.2)
    assert holder.serving.model_path == '/first.pt'  # one stream still holds it
    holder.release()
    assert _wait(lambda: holder.serving.model_path == '/second.pt')
    caller.join(10.0)
    assert late and late[0] is not held[0]  # it got the new model, after the swap
    holder.release()
    assert _wait(lambda: built['/first.pt'].closed.is_set())
    holder.close()
