"""Telling transport loss, unsynchronised stamps and lateness apart (ros/input_health.py), and
the stamp gap StampBuffer reports when nothing matched."""

from bisenet_ros.ros.input_health import InputCounts, missing_cloud_cause
from bisenet_ros.ros.stamp_buffer import StampBuffer


def counts(colour, depth, info):
    c = InputCounts()
    for name, n in (('colour', colour), ('depth', depth), ('camera_info', info)):
        for _ in range(n):
            c.add(name)
    return c


def test_few_depth_images_for_the_colour_frames_is_transport_loss():
    cause = missing_cloud_cause(counts(68, 26, 60), 0.001, 0.0, 0.02, 0.1)
    assert cause.startswith('transport loss: 26 depth images received for 68 colour frames')
    assert 'FASTDDS_DEFAULT_PROFILES_FILE' in cause
    lost_info = missing_cloud_cause(counts(40, 40, 3), None, None, 0.02, 0.1)
    assert '3 camera_infos received for 40 colour frames' in lost_info


def test_depth_that_arrives_with_other_stamps_is_timing():
    cause = missing_cloud_cause(counts(50, 50, 50), 0.045, 0.0, 0.02, 0.1)
    assert cause.startswith('timing: depth arrives (50 depth images for 50 colour frames)')
    assert '45.0 ms' in cause and '20.0 ms' in cause


def test_matching_stamps_that_come_late_is_lateness():
    cause = missing_cloud_cause(counts(50, 49, 50), 0.0, 0.0, 0.02, 0.1)
    assert cause.startswith('late:') and 'depth_wait 0.1 s' in cause


def test_diagnostic_values_name_every_count():
    c = counts(3, 2, 1)
    c.add('clouds')
    assert c.as_values() == {'colour_received': '3', 'depth_received': '2',
                             'camera_info_received': '1', 'clouds_published': '1',
                             'clouds_missing': '0', 'camera_info_rejected': '0'}


def test_stamp_buffer_reports_the_nearest_gap_beyond_the_tolerance():
    buffer = StampBuffer()
    assert buffer.nearest_gap(100) is None
    buffer.put(1_000, 'a')
    buffer.put(5_000, 'b')
    assert buffer.nearest_gap(4_000) == 1_000
    assert buffer.wait_for(4_000, 10, 0.0) is None  # nothing within the tolerance
