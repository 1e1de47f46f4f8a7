"""The contract Nav2's semantic_segmentation_layer relies on, against the real node over DDS.

mask (mono8), confidence (32FC1 and mono8), the organized cloud on /segmentation/points and the
latched vision_msgs/LabelInfo: message types, encodings, QoS, one stamp for all, the mask's
width x height, and known x, y, z for a synthetic plane at a known depth.
"""

import json
import os
import signal

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import String

from bisenet_ros.image_conversions import confidence_to_mono8, fill_image, image_to_array
from bisenet_ros.ros.clients.node_process import NodeProcess
from bisenet_ros.ros.point_cloud import point_dtype
from ros_harness import pattern_image, Probe, stamp_ns, write_random_checkpoint

try:
    from vision_msgs.msg import LabelInfo
except ImportError as exc:  # a venv without ../shared/ros2-wheels (CI has them)
    pytest.skip(f'vision_msgs not importable ({exc}); install ../shared/ros2-wheels',
                allow_module_level=True)

DOMAIN = 60 + os.getpid() % 10
H, W = 48, 64
IN, DEPTH, INFO = '/camera/image_raw', '/camera/depth/image_raw', '/camera/depth/camera_info'
OUT = '/segmentation'
K = [50.0, 0.0, 31.5, 0.0, 40.0, 23.5, 0.0, 0.0, 1.0]
LATCHED = {'latched': True}


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp('model') / 'nav2.pt', seed=3)


@pytest.fixture(scope='module')
def running(checkpoint):
    node = NodeProcess({'backend': 'torch', 'threads': 1, 'model_path': str(checkpoint),
                        'depth_topic': DEPTH, 'publish_confidence': True,
                        'publish_confidence_mono8': True, 'points_confidence': True,
                        'depth_wait': 2.0, 'depth_stamp_tolerance': 0.0,
                        f'qos_overrides.{IN}.subscription.reliability': 'reliable'}, DOMAIN)
    probe = Probe(DOMAIN)
    for name in ('mask', 'confidence', 'confidence_mono8'):
        probe.subscribe(Image, f'{OUT}/{name}', qos=qos_profile_sensor_data)
    probe.subscribe(PointCloud2, f'{OUT}/points', qos=qos_profile_sensor_data)
    try:
        assert probe.wait_for_publishers(f'{OUT}/points', timeout=90), node.log()
        yield node, probe
    finally:
        probe.close()
        assert node.stop(signal.SIGINT) == 0, node.log()[-3000:]


def _send(probe, stamp, depth, encoding, frame_id='camera_color_optical_frame'):
    image = probe.image_msg(pattern_image(H, W), 'bgr8', frame_id, stamp)
    depth_msg = fill_image(Image(), depth, encoding)
    # camera_info describes the depth image (as a driver's does); its size is the depth's
    info = CameraInfo(height=depth.shape[0], width=depth.shape[1], k=K,
                      distortion_model='plumb_bob')
    for msg in (depth_msg, info):
        msg.header = image.header
    sensor = qos_profile_sensor_data
    pubs = [probe.publisher(Image, DEPTH, sensor), probe.publisher(CameraInfo, INFO, sensor),
            probe.publisher(Image, IN)]
    for pub in pubs:
        assert probe.wait_for_subscribers(pub.topic_name, timeout=60)
    # Until the mask comes (60 s at most): the image every 2 s, as the node drops frames before
    # its model is loaded and skips outputs whose subscriber it has not matched yet; depth and
    # camera_info (best effort, same stamp) every 50 ms, as the first messages after matching
    # can be lost while the node waits for them (depth_wait).
    for i in range(1200):
        if i % 40 == 0:
            pubs[2].publish(image)
        pubs[0].publish(depth_msg)
        pubs[1].publish(info)
        if probe.wait_for(lambda: _stamped(probe, f'{OUT}/mask', stamp), 0.05):
            break
    return image.header


def _stamped(probe, topic, stamp):
    return [m for m in probe.received[topic] if stamp_ns(m) == stamp]


def _by_stamp(probe, topic, stamp):
    assert probe.wait_for(lambda: bool(_stamped(probe, topic, stamp)), 60.0), \
        f'nothing on {topic} for {stamp}'
    return _stamped(probe, topic, stamp)[0]


@pytest.mark.parametrize('encoding, plane, metres', [('16UC1', 1500, 1.5),
                                                     ('32FC1', 2.25, 2.25)])
def test_mask_confidence_and_cloud_share_stamp_size_and_geometry(running, encoding, plane,
                                                                 metres):
    node, probe = running
    stamp = 1_700_000_000_000_000_000 + (1 if encoding == '16UC1' else 2) * 1_000_000
    depth = np.full((H, W), plane, np.uint16 if encoding == '16UC1' else np.float32)
    depth[0, :5] = 0  # no reading: NaN points
    header = _send(probe, stamp, depth, encoding)
    mask = _by_stamp(probe, f'{OUT}/mask', stamp)
    conf = _by_stamp(probe, f'{OUT}/confidence', stamp)
    conf8 = _by_stamp(probe, f'{OUT}/confidence_mono8', stamp)
    cloud = _by_stamp(probe, f'{OUT}/points', stamp)
    for msg in (mask, conf, conf8, cloud):
        assert msg.header.frame_id == header.frame_id
        assert (msg.height, msg.width) == (H, W)
    assert (mask.encoding, conf.encoding, conf8.encoding) == ('mono8', '32FC1', 'mono8')
    np.testing.assert_array_equal(image_to_array(conf8),
                                  confidence_to_mono8(image_to_array(conf)))

    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('label', 12, 4, 1),
        ('confidence', 16, 7, 1)]
    assert cloud.point_step == 20 and cloud.row_step == 20 * W and not cloud.is_bigendian
    assert not cloud.is_dense
    points = np.frombuffer(bytes(cloud.data), point_dtype(True)).reshape(H, W)
    v, u = np.mgrid[0:H, 0:W]
    valid = np.ones((H, W), bool)
    valid[0, :5] = False
    np.testing.assert_allclose(points['z'][valid], metres, rtol=1e-6)
    np.testing.assert_allclose(points['x'][valid], ((u - 31.5) * metres / 50.0)[valid],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(points['y'][valid], ((v - 23.5) * metres / 40.0)[valid],
                               rtol=1e-5, atol=1e-6)
    assert np.isnan(points['x'][~valid]).all() and np.isnan(points['z'][~valid]).all()
    np.testing.assert_array_equal(points['label'], image_to_array(mask))
    np.testing.assert_array_equal(points['confidence'], image_to_array(conf))


def test_depth_of_another_size_gives_no_cloud_and_the_reason(running):
    node, probe = running
    stamp = 1_700_000_000_000_000_000 + 3_000_000
    header = _send(probe, stamp, np.full((H // 2, W // 2), 1000, np.uint16), '16UC1')
    _by_stamp(probe, f'{OUT}/mask', stamp)  # the mask still comes
    assert probe.wait_for(lambda: 'depth image is 32x24 (WxH) but the mask is 64x48'
                          in node.log(), 30.0), node.log()[-2000:]
    assert not [m for m in probe.received[f'{OUT}/points'] if m.header == header]


def test_output_qos_serves_sensor_data_subscribers_and_label_info_is_latched(running,
                                                                             checkpoint):
    node, probe = running
    for topic in ('mask', 'confidence_mono8', 'points'):
        (info,) = probe.node.get_publishers_info_by_topic(f'{OUT}/{topic}')
        # A reliable publisher serves best-effort (SensorData) and reliable subscribers alike.
        assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    (info,) = probe.node.get_publishers_info_by_topic(f'{OUT}/label_info')
    assert info.topic_type == 'vision_msgs/msg/LabelInfo'
    assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    assert info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    # A subscriber that joins late still gets it, and it matches the JSON class_info.
    probe.subscribe(LabelInfo, f'{OUT}/label_info', **LATCHED)
    probe.subscribe(String, f'{OUT}/class_info', **LATCHED)
    assert probe.wait_for(lambda: probe.received[f'{OUT}/label_info']
                          and probe.received[f'{OUT}/class_info'], 30.0)
    label_info = probe.received[f'{OUT}/label_info'][0]
    names = json.loads(probe.received[f'{OUT}/class_info'][0].data)['class_names']
    assert [(c.class_id, c.class_name) for c in label_info.class_map] == list(enumerate(names))
    assert 'road' in names and 'pedestrian' in names


def test_label_info_follows_the_confidence_threshold(running):
    """(was: the latched LabelInfo kept the threshold it was first published with)"""
    node, probe = running
    topic = f'{OUT}/label_info'
    probe.subscribe(LabelInfo, topic, **LATCHED)
    assert probe.wait_for(lambda: probe.received[topic], 30.0)
    assert probe.received[topic][-1].threshold == pytest.approx(0.0)
    try:
        assert probe.set_parameters({'confidence_threshold': 0.35})[0].successful
        assert probe.wait_for(lambda: probe.received[topic][-1].threshold
                              == pytest.approx(0.35), 30.0), node.log()[-2000:]
        # A late subscriber gets the new value from the latched topic.
        late = Probe(DOMAIN, 'late_label_info')
        try:
            late.subscribe(LabelInfo, topic, **LATCHED)
            assert late.wait_for(lambda: late.received[topic], 30.0)
            assert late.received[topic][-1].threshold == pytest.approx(0.35)
        finally:
            late.close()
        # A change that alters nothing published republishes nothing.
        count = len(probe.received[topic])
        assert probe.set_parameters({'overlay_alpha': 0.3})[0].successful
        assert probe.set_parameters({'confidence_threshold': 0.35})[0].successful
        assert probe.get_parameters(['overlay_alpha'])['overlay_alpha'] == pytest.approx(0.3)
        assert len(probe.received[topic]) == count
    finally:
        assert probe.set_parameters({'confidence_threshold': 0.0})[0].successful


def test_group_mask_and_its_label_info_follow_the_groups_file(checkpoint):
    """class_groups:=camvid_nav2: /segmentation/groups (mono8) is the groups file's mapping of
    the mask with its per-class thresholds, with its own latched LabelInfo."""
    from bisenet_ros.class_groups import load_class_groups, UNKNOWN_ID
    from bisenet_ros.labels import load_label_set
    domain = DOMAIN + 20
    node = NodeProcess({'backend': 'torch', 'threads': 1, 'model_path': str(checkpoint),
                        'class_groups': 'camvid_nav2', 'publish_confidence': True}, domain)
    probe = Probe(domain)
    groups = load_class_groups('camvid_nav2', load_label_set('camvid'))
    try:
        for name in ('mask', 'confidence', 'groups'):
            probe.subscribe(Image, f'{OUT}/{name}')
        probe.subscribe(LabelInfo, f'{OUT}/groups_label_info', **LATCHED)
        pub = probe.publisher(Image, IN)
        msg = probe.image_msg(pattern_image(H, W, seed=9), 'bgr8')
        reply = probe.reply_to(pub, msg, f'{OUT}/groups', log=node.log)
        assert reply.encoding == 'mono8' and (reply.height, reply.width) == (H, W)
        assert probe.wait_for(lambda: all(
            [m for m in probe.received[f'{OUT}/{n}'] if stamp_ns(m) == stamp_ns(msg)]
            for n in ('mask', 'confidence')), 30.0)
        mask, confidence = (image_to_array(next(
            m for m in probe.received[f'{OUT}/{n}'] if stamp_ns(m) == stamp_ns(msg)))
            for n in ('mask', 'confidence'))
        got = image_to_array(reply)
        np.testing.assert_array_equal(got, groups.group_ids(mask, confidence))
        assert set(np.unique(got)) <= set(range(groups.num_groups)) | {UNKNOWN_ID}
        assert probe.wait_for(lambda: probe.received[f'{OUT}/groups_label_info'], 30.0)
        info = probe.received[f'{OUT}/groups_label_info'][-1]
        assert [(c.class_id, c.class_name) for c in info.class_map] == groups.class_map()
        assert info.threshold == pytest.approx(groups.min_threshold)
    finally:
        probe.close()
        assert node.stop(signal.SIGINT) == 0, node.log()[-3000:]
