"""Depth -> organized semantic cloud: units, invalid depth, back-projection, field layout."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from bisenet_ros.ros.point_cloud import (BadCameraInfo, check_camera_info, DepthMismatch,
                                         MAX_DEPTH_M, depth_in_metres, FLOAT32, intrinsics,
                                         point_dtype, point_fields, semantic_cloud, UINT16)

K = [100.0, 0.0, 3.5, 0.0, 80.0, 2.0, 0.0, 0.0, 1.0]  # fx=100, fy=80, cx=3.5, cy=2


def test_16uc1_millimetres_and_32fc1_metres_with_invalid_readings_as_nan():
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    m = depth_in_metres(mm, '16UC1')
    assert m.dtype == np.float32 and np.isnan(m[0, 0])
    assert m[0, 1] == pytest.approx(1.5) and m[1, 0] == pytest.approx(65.535)
    assert m[1, 1] == pytest.approx(0.001)
    f = np.array([[np.nan, 2.0], [np.inf, -1.0]], np.float32)
    out = depth_in_metres(f, '32FC1')
    assert np.isnan(out[0, 0]) and out[0, 1] == 2.0 and np.isnan(out[1]).all()
    assert not np.isnan(f[0, 1])  # the input is not modified
    with pytest.raises(DepthMismatch, match="'mono16' not supported; expected one of 16UC1"):
        depth_in_metres(mm, 'mono16')


def test_plane_at_known_depth_gives_known_xyz():
    h, w = 5, 8
    depth = np.full((h, w), 2000, np.uint16)  # a wall 2 m in front of the camera
    depth[0, 0] = 0
    labels = np.arange(h * w, dtype=np.uint8).reshape(h, w) % 11
    conf = np.linspace(0, 1, h * w, dtype=np.float32).reshape(h, w)
    cloud = semantic_cloud(depth, '16UC1', K, labels, conf)
    assert cloud.shape == (h, w)
    v, u = np.mgrid[0:h, 0:w]
    valid = np.ones((h, w), bool)
    valid[0, 0] = False
    np.testing.assert_allclose(cloud['z'][valid], 2.0)
    np.testing.assert_allclose(cloud['x'][valid], ((u - 3.5) * 2.0 / 100.0)[valid], atol=1e-6)
    np.testing.assert_allclose(cloud['y'][valid], ((v - 2.0) * 2.0 / 80.0)[valid], atol=1e-6)
    assert np.isnan([cloud[0, 0][c] for c in 'xyz']).all()
    assert (cloud['label'] == labels).all() and (cloud['confidence'] == conf).all()


def test_field_layout_matches_the_packed_bytes():
    assert point_fields(False) == [('x', 0, FLOAT32), ('y', 4, FLOAT32), ('z', 8, FLOAT32),
                                   ('label', 12, UINT16)]
    assert point_fields(True)[-1] == ('confidence', 16, FLOAT32)
    assert point_dtype(False).itemsize == 16 and point_dtype(True).itemsize == 20
    cloud = semantic_cloud(np.full((2, 3), 1.25, np.float32), '32FC1', K,
                           np.full((2, 3), 7, np.uint8))
    raw = cloud.tobytes()
    assert len(raw) == 2 * 3 * 16
    assert np.frombuffer(raw[8:12], '<f4')[0] == 1.25
    assert np.frombuffer(raw[12:14], '<u2')[0] == 7


def test_mismatches_are_refused_with_the_reason():
    labels = np.zeros((4, 6), np.uint8)
    with pytest.raises(DepthMismatch, match=r'depth image is 8x4 \(WxH\) but the mask is 6x4'):
        semantic_cloud(np.ones((4, 8), np.float32), '32FC1', K, labels)
    with pytest.raises(DepthMismatch, match='fx=0.0'):
        intrinsics([0.0] * 9)
    with pytest.raises(DepthMismatch, match='9 values, got 4'):
        intrinsics([1, 0, 0, 1])


def _info(k=K, d=(0.0,) * 5, width=8, height=4, **extra):
    return SimpleNamespace(k=list(k), d=list(d), width=width, height=height, **extra)


@pytest.mark.parametrize('k,reason', [
    ([math.inf, 0, 3.5, 0, 80, 2, 0, 0, 1], 'K must be finite'),
    ([1e300, 0, 3.5, 0, 80, 2, 0, 0, 1], r'fx=1e\+300'),
    ([1e-300, 0, 3.5, 0, 80, 2, 0, 0, 1], 'fx=1e-300'),
    ([100, 0, math.nan, 0, 80, 2, 0, 0, 1], 'K must be finite'),
    ([100, 0, 3.5, 0, 80, math.nan, 0, 0, 1], 'K must be finite'),
    ([100, 0, 3.5e9, 0, 80, 2, 0, 0, 1], 'principal point'),
])
def test_implausible_intrinsics_are_refused_not_turned_into_a_cloud(k, reason):
    """fx = inf put every point on the axis, 1e-300 at infinity, NaN cx made all points NaN."""
    with pytest.raises(BadCameraInfo, match=reason):
        check_camera_info(_info(k=k), (4, 8))
    assert issubclass(BadCameraInfo, DepthMismatch)  # what the node catches already


def test_camera_info_must_describe_the_depth_image():
    assert check_camera_info(_info(), (4, 8)) == (100.0, 80.0, 3.5, 2.0)
    with pytest.raises(BadCameraInfo, match=r'for 640x480 images .* depth image is 8x4'):
        check_camera_info(_info(width=640, height=480), (4, 8))
    binned = _info(width=16, height=8, binning_x=2, binning_y=2,
                   roi=SimpleNamespace(width=0, height=0))
    assert check_camera_info(binned, (4, 8))[0] == 100.0
    with pytest.raises(BadCameraInfo, match='D must be at most 64 finite values'):
        check_camera_info(_info(d=[0.1, math.nan]), (4, 8))


def test_depths_beyond_the_maximum_are_no_reading():
    depth = np.array([[1.0, MAX_DEPTH_M, MAX_DEPTH_M * 1.01, 1e38]], np.float32)
    metres = depth_in_metres(depth, '32FC1')
    assert metres[0, :2].tolist() == [1.0, MAX_DEPTH_M]
    assert np.isnan(metres[0, 2:]).all()
