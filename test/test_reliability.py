"""Reliability of the running node (issue 7): storms of malformed input, long runs, faults.

Each scenario drives a real node process over DDS from this process, as users' graphs do.
"""

import os
from pathlib import Path
import signal
import threading
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from bisenet_ros.image_conversions import image_to_array
from bisenet_ros.inference import Segmenter
from bisenet_ros.ros.clients.node_process import NodeProcess
from ros_harness import pattern_image, Probe, stamp_ns, write_random_checkpoint

DOMAIN = 40 + os.getpid() % 10
H, W = 48, 64
IN = '/camera/image_raw'
MASK = '/segmentation/mask'
RELIABLE_INPUT = {f'qos_overrides.{IN}.subscription.reliability': 'reliable'}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp('model') / 'a.pt', seed=5)


@pytest.fixture(scope='module')
def segmenter(checkpoint):
    # One thread here and in the node: torch's CPU sums then run in the same order, so the
    # masks compare exactly even where random weights leave near-tied logits.
    return Segmenter(str(checkpoint), backend='torch', threads=1)


def start(params, domain):
    node = NodeProcess({'backend': 'torch', 'threads': 1, 'diagnostics_period': 0.5,
                        **params}, domain)
    probe = Probe(domain)
    probe.subscribe(Image, MASK)
    probe.subscribe(DiagnosticArray, '/diagnostics')
    return node, probe


def serving(checkpoint, domain):
    """``(node, probe, publisher)``: a node that has answered a first frame on ``IN``, so
    that from here on each frame published gets its mask (see ``Probe.reply_to``)."""
    node, probe = start({'model_path': str(checkpoint), **RELIABLE_INPUT}, domain)
    try:
        pub = probe.publisher(Image, IN)
        assert probe.wait_for_subscribers(IN, timeout=90), node.log()
        probe.reply_to(pub, probe.image_msg(pattern_image(H, W), 'bgr8'), MASK, timeout=90,
                       log=node.log)
    except BaseException:
        probe.close()
        node.stop(signal.SIGKILL)
        raise
    return node, probe, pub


def wait_mask(probe, stamp, timeout=60.0):
    assert probe.wait_for(lambda: any(stamp_ns(m) == stamp for m in probe.received[MASK]),
                          timeout), f'no mask for stamp {stamp}'
    return next(m for m in probe.received[MASK] if stamp_ns(m) == stamp)


def camera_counter(probe, key):
    """Newest value of a counter in the camera's diagnostics status (-1 before the first).

    Does not wait: it is called inside ``probe.wait_for`` predicates (which hold the lock).
    """
    if not probe.received['/diagnostics']:
        return -1
    for status in probe.received['/diagnostics'][-1].status:
        if status.name.endswith(IN) or status.name.endswith(IN + '/compressed'):
            return int({kv.key: kv.value for kv in status.values}[key])
    raise AssertionError('no camera status on /diagnostics')


def malformed_images(probe, count):
    """``count`` Image messages that must all be refused, of many kinds."""
    good = probe.image_msg(pattern_image(H, W), 'bgr8')
    data, row = bytes(good.data), W * 3
    kinds = [
        dict(step=row - 1),                                          # step too small
        dict(step=row + 1),                                          # odd step, data too short
        dict(data=data[:len(data) // 2]),                            # data shorter
        dict(height=0), dict(width=0),                               # zero sizes
        dict(height=100_000, width=100_000, step=300_000),           # huge, tiny data
        dict(encoding='bgr9'), dict(encoding=''), dict(encoding='32FC1'),
        dict(encoding='mono16', is_bigendian=1, step=W * 2, height=H * 2),  # too little data
        dict(encoding='yuv422', step=W),                             # step < 2 bytes/pixel
        dict(encoding='bayer_rggb16', step=W),
    ]
    messages = []
    for i in range(count):
        msg = probe.image_msg(pattern_image(H, W), 'bgr8')
        for name, value in kinds[i % len(kinds)].items():
            setattr(msg, name, value)
        messages.append(msg)
    return messages


@pytest.mark.slow
def test_thousands_of_malformed_images_never_stop_the_node(checkpoint, segmenter):
    """2400 malformed frames in bursts, a valid frame after each burst: every valid frame
    is segmented exactly, rejects are counted, warnings are throttled."""
    node, probe, pub = serving(checkpoint, DOMAIN)
    try:
        bad = malformed_images(probe, 2400)
        rounds = 24
        for r in range(rounds):
            for msg in bad[r * 100:(r + 1) * 100]:
                pub.publish(msg)
            time.sleep(0.05)  # a pause between bursts: the input pattern under test
            image = pattern_image(H, W, seed=r)
            valid = probe.image_msg(image, 'bgr8')
            pub.publish(valid)
            mask = wait_mask(probe, stamp_ns(valid))
            np.testing.assert_array_equal(image_to_array(mask), segmenter.segment(image).labels)
        assert node.alive(), node.log()[-3000:]
        assert probe.wait_for(lambda: camera_counter(probe, 'frames_rejected') >= rounds, 20)
        rejected = camera_counter(probe, 'frames_rejected')
        warnings = node.log().count('frame rejected')
        assert 1 <= warnings < rejected / 2, (warnings, rejected)  # throttled
    finally:
        probe.close()
        assert node.stop() == 0, node.log()[-3000:]


@pytest.mark.slow
def test_corrupt_compressed_images_never_stop_the_node(checkpoint, segmenter):
    node, probe = start({'model_path': str(checkpoint), 'compressed': True,
                         f'qos_overrides.{IN}/compressed.subscription.reliability':
                         'reliable'}, DOMAIN + 1)
    topic = IN + '/compressed'
    rng = np.random.default_rng(0)
    try:
        pub = probe.publisher(CompressedImage, topic)
        assert probe.wait_for_subscribers(topic, timeout=90), node.log()
        ok, jpeg = cv2.imencode('.jpg', pattern_image(H, W))
        assert ok
        jpeg = jpeg.tobytes()
        first = CompressedImage(format='jpeg', data=jpeg)
        first.header = probe.image_msg(pattern_image(H, W), 'bgr8').header
        probe.reply_to(pub, first, MASK, timeout=90, log=node.log)  # from here on: answered
        for r in range(10):
            for i in range(60):
                msg = CompressedImage(format=('jpeg', 'png', '')[i % 3])
                msg.header = probe.image_msg(np.zeros((1, 1), np.uint8), 'mono8').header
                if i % 2:
                    msg.data = rng.integers(0, 256, int(rng.integers(0, 500)),
                                            dtype=np.uint8).tobytes()
                else:
                    broken = bytearray(jpeg[:int(rng.integers(1, len(jpeg)))])
                    broken[int(rng.integers(0, len(broken)))] ^= 0xFF
                    msg.data = bytes(broken)
                pub.publish(msg)
            time.sleep(0.05)  # a pause between bursts: the input pattern under test
            image = pattern_image(H, W, seed=r)
            ok, png = cv2.imencode('.png', image)
            valid = CompressedImage(format='png', data=png.tobytes())
            valid.header = probe.image_msg(image, 'bgr8').header
            pub.publish(valid)
            mask = wait_mask(probe, stamp_ns(valid))
            np.testing.assert_array_equal(image_to_array(mask), segmenter.segment(image).labels)
        assert node.alive()
        assert probe.wait_for(lambda: camera_counter(probe, 'frames_rejected') >= 1, 20)
    finally:
        probe.close()
        assert node.stop() == 0, node.log()[-3000:]


def _proc_usage(pid):
    status = Path(f'/proc/{pid}/status').read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith('VmRSS:')))
    return (rss_kb, len(os.listdir(f'/proc/{pid}/task')), len(os.listdir(f'/proc/{pid}/fd')))


@pytest.mark.slow
def test_ten_thousand_frames_without_growth(checkpoint):
    """10,000 frames, each segmented (one in flight): resident memory grows < 5 %
    after warm-up; threads and open files do not grow."""
    node, probe = start({'model_path': str(checkpoint), **RELIABLE_INPUT}, DOMAIN + 2)
    done = threading.Condition()
    masks = [0]

    def on_mask(_msg):
        with done:
            masks[0] += 1
            done.notify_all()

    try:
        probe.node.create_subscription(Image, MASK, on_mask, 10)
        pub = probe.publisher(Image, IN)
        assert probe.wait_for_subscribers(IN, timeout=90), node.log()
        images = [probe.image_msg(pattern_image(H, W, seed=s), 'bgr8') for s in range(4)]
        total, warm = 10_000, None
        for i in range(total):
            with done:
                assert done.wait_for(lambda: masks[0] >= i, timeout=60), (i, masks[0])
            msg = images[i % 4]
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1_000 + i // 1000, (i % 1000) * 1000
            pub.publish(msg)
            if i == 1_500:
                warm = _proc_usage(node.proc.pid)
            if i % 500 == 499:
                probe.received[MASK].clear()  # keep the probe's own memory flat
        with done:
            assert done.wait_for(lambda: masks[0] >= total, timeout=60), masks[0]
        end = _proc_usage(node.proc.pid)
        assert end[0] < warm[0] * 1.05, f'RSS {warm[0]} kB -> {end[0]} kB'
        assert end[1] <= warm[1], f'threads {warm[1]} -> {end[1]}'
        assert end[2] <= warm[2], f'open files {warm[2]} -> {end[2]}'
        assert node.alive()
    finally:
        probe.close()
        assert node.stop() == 0, node.log()[-3000:]


@pytest.mark.slow
def test_camera_restart_and_subscribers_coming_and_going(checkpoint, segmenter):
    node, listener = start({'model_path': str(checkpoint), **RELIABLE_INPUT}, DOMAIN + 3)
    try:
        for generation in range(3):  # the camera process restarts: a new participant each time
            camera = Probe(DOMAIN + 3, name=f'camera_{generation}')
            pub = camera.publisher(Image, IN)
            assert camera.wait_for_subscribers(IN, timeout=90), node.log()
            image = pattern_image(H, W, seed=generation)
            msg = camera.image_msg(image, 'bgr8')
            mask = listener.reply_to(pub, msg, MASK, log=node.log)  # a new camera: resent
            np.testing.assert_array_equal(image_to_array(mask), segmenter.segment(image).labels)
            camera.close()
        # subscribers come and go: a second listener joins, the first leaves
        late = Probe(DOMAIN + 3, name='late_listener')
        late.subscribe(Image, MASK)
        listener.close()
        camera = Probe(DOMAIN + 3, name='camera_last')
        pub = camera.publisher(Image, IN)
        assert camera.wait_for_subscribers(IN, timeout=60)
        assert late.wait_for(lambda: late.node.count_publishers(MASK) >= 1, 30)
        late.reply_to(pub, camera.image_msg(pattern_image(H, W, seed=9), 'bgr8'), MASK, 30)
        camera.close()
        late.close()
        assert node.alive()
    finally:
        assert node.stop() == 0, node.log()[-3000:]


@pytest.mark.slow
def test_model_file_corrupted_while_reloading_keeps_a_model_serving(checkpoint, tmp_path):
    """A writer flips the new model file between complete and truncated while the node is
    asked to reload it: every reload either loads the complete file or is refused with the
    error, and the node serves the old or the new model, never nothing."""
    other = write_random_checkpoint(tmp_path / 'b_source.pt', seed=6)
    complete = other.read_bytes()
    target = tmp_path / 'b.pt'
    target.write_bytes(complete)
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            for content in (complete[:len(complete) // 3], complete):
                tmp = target.with_suffix('.tmp')
                tmp.write_bytes(content)
                os.replace(tmp, target)
                time.sleep(0.01)  # the pace of a writer replacing the file: the behaviour

    old = Segmenter(str(checkpoint), backend='torch')
    new = Segmenter(str(other), backend='torch')
    node, probe, pub = serving(checkpoint, DOMAIN + 4)
    writer = threading.Thread(target=flip, daemon=True)
    try:
        writer.start()
        outcomes = []
        for attempt in range(6):
            path = str(checkpoint) if attempt % 2 else str(target)
            result = probe.set_parameters({'model_path': path})[0]
            outcomes.append(result.successful)
            if not result.successful:
                assert 'cannot load model' in result.reason and 'still serving' in result.reason
            image = pattern_image(H, W, seed=attempt)
            msg = probe.image_msg(image, 'bgr8')
            pub.publish(msg)
            labels = image_to_array(wait_mask(probe, stamp_ns(msg)))
            expected = [old.segment(image).labels, new.segment(image).labels]
            assert any(np.array_equal(labels, e) for e in expected)
        assert node.alive() and any(outcomes)
    finally:
        stop.set()
        probe.close()
        assert node.stop() == 0, node.log()[-3000:]


def _own_shm_segments(pid, others):
    """Fast DDS shared-memory files mapped by ``pid`` and by none of ``others``."""
    def mapped(p):
        return {line.split()[-1] for line in Path(f'/proc/{p}/maps').read_text().splitlines()
                if '/dev/shm/' in line}
    theirs = set().union(*(mapped(p) for p in others)) if others else set()
    return mapped(pid) - theirs


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_signals_stop_the_node_quickly_without_shared_memory_left(checkpoint, sig):
    node, probe, pub = serving(checkpoint, DOMAIN + 5)
    try:
        segments = _own_shm_segments(node.proc.pid, [os.getpid()])
        for _ in range(20):  # keep the worker busy while the signal arrives
            pub.publish(probe.image_msg(pattern_image(H, W), 'bgr8'))
        began = time.monotonic()
        code = node.stop(sig, timeout=10.0)
        took = time.monotonic() - began
        assert code == 0, node.log()[-3000:]
        assert took < 2.0, f'{signal.Signals(sig).name} took {took:.2f} s'
        assert [s for s in segments if os.path.exists(s)] == []
    finally:
        probe.close()
        if node.alive():
            node.stop(signal.SIGKILL)


def _shm_in_use():
    """Every /dev/shm file mapped by a live process of this user (shared ports included)."""
    used = set()
    for maps in Path('/proc').glob('[0-9]*/maps'):
        try:
            used.update(line.split()[-1] for line in maps.read_text().splitlines()
                        if '/dev/shm/' in line)
        except OSError:  # gone, or another user's
            continue
    return used


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_two_signals_10ms_apart_still_clean_up_everything(checkpoint, sig, tmp_path):
    # `ros2 launch` without a terminal delivers two SIGINTs. The onnxruntime backend keeps its
    # exported graph in the artifact cache (not a temp dir): the node's own TMPDIR must be
    # empty after exit 0.
    node_tmp = tmp_path / 'node_tmp'
    node_tmp.mkdir()
    cache = tmp_path / 'cache'
    node = NodeProcess({'backend': 'onnxruntime', 'threads': 1, 'model_path': str(checkpoint),
                        **RELIABLE_INPUT}, DOMAIN + 6,
                       env={'TMPDIR': str(node_tmp), 'BISENET_CACHE_DIR': str(cache)})
    probe = Probe(DOMAIN + 6)
    probe.subscribe(Image, MASK)
    try:
        pub = probe.publisher(Image, IN)
        assert probe.wait_for_subscribers(IN, timeout=90), node.log()
        probe.reply_to(pub, probe.image_msg(pattern_image(H, W), 'bgr8'), MASK, timeout=120,
                       log=node.log)
        assert list(cache.rglob('*.onnx'))  # the export is in the artifact cache
        # fastdds_port<N> files are the domain's port queues, kept by Fast DDS for reuse.
        segments = [s for s in _own_shm_segments(node.proc.pid, [])
                    if not Path(s).name.startswith('fastdds_port')]
        assert segments, 'the node maps no Fast DDS segment of its own: nothing to check'
        for _ in range(5):
            pub.publish(probe.image_msg(pattern_image(H, W), 'bgr8'))
        probe.close()  # from here on only the node can hold its segments
        code = node.stop(sig, timeout=30.0, repeat=2, interval=0.01)
        log = node.log()
        assert code == 0, log[-3000:]
        assert 'Traceback' not in log, log[-3000:]
        # onnxruntime's import writes $TMPDIR/.ses (its session id, reused by every process
        # that imports it): not the node's to remove.
        assert [p for p in node_tmp.iterdir() if p.name != '.ses'] == []
        still_used = _shm_in_use()
        assert [s for s in segments if os.path.exists(s) and s not in still_used] == []
    finally:
        probe.close()
        if node.alive():
            node.stop(signal.SIGKILL)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_a_burst_of_signals_during_the_stop_is_absorbed(checkpoint, sig):
    # Each signal after the first lands somewhere in the stop: none may raise there (CI saw a
    # second SIGINT from `ros2 launch` break the stop with a KeyboardInterrupt traceback).
    node, probe, _ = serving(checkpoint, DOMAIN + 7)
    try:
        code = node.stop(sig, timeout=10.0, repeat=40, interval=0.0005)
        log = node.log()
        assert code == 0, log[-3000:]
        assert 'Traceback' not in log and 'KeyboardInterrupt' not in log, log[-3000:]
    finally:
        probe.close()
        if node.alive():
            node.stop(signal.SIGKILL)
