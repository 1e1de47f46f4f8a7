"""Semantic point cloud: registered depth + intrinsics + mask -> organized cloud fields.

Pure numpy (no ROS imports). The cloud is *organized*: ``height x width`` points in the mask's
pixel order, so point ``(v, u)`` belongs to mask pixel ``(v, u)`` (what Nav2's
``semantic_segmentation_layer`` relies on). Coordinates follow the camera's optical frame
(REP 103/105: x right, y down, z forward, metres), the frame of the image and of the
registered depth. Pixels without a valid depth give NaN coordinates.

Depth encodings: ``16UC1`` in millimetres (0 = no reading) and ``32FC1`` in metres (NaN, inf,
values <= 0 and values beyond :data:`MAX_DEPTH_M` = no reading).
A depth image whose size differs from the mask is refused
(:class:`DepthMismatch`): a registered depth has the colour image's size, and resampling a
depth image silently would put points on the wrong pixels.

A camera_info that cannot describe the camera (:func:`check_camera_info`: K or D not finite,
focal lengths outside :data:`FOCAL_RANGE_PX`, a principal point far off the image, a size
that is not the depth image's) is refused with :class:`BadCameraInfo`: no cloud, and a reason
the node counts. fx = inf would put every point on the optical axis, fx = 1e-300 at infinity,
a NaN cx would make every point NaN.
"""

from __future__ import annotations

import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

#: ``sensor_msgs/PointField`` datatype constants used here.
UINT16, FLOAT32 = 4, 7
DEPTH_ENCODINGS = ('16UC1', '32FC1')


#: Farthest depth counted as a reading, in metres (long-range lidars reach a few hundred): a
#: float32 depth of 1e38 m is no reading, not a point.
MAX_DEPTH_M = 1000.0
#: Focal lengths (fx, fy) accepted, in pixels: a 1-pixel focal length is a fish-eye on a tiny
#: image, 1e6 pixels a telescope; anything outside is a broken calibration.
FOCAL_RANGE_PX = (1.0, 1e6)
#: Most distortion coefficients (the rational and thin-prism models use 8 to 14).
MAX_DISTORTION_COEFFS = 64


class DepthMismatch(ValueError):
    """Depth and camera_info cannot make a cloud for this mask; the message says why."""


class BadCameraInfo(DepthMismatch):
    """The camera_info itself is implausible (see :func:`check_camera_info`); no cloud."""


def depth_in_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """``(H, W)`` depth -> float32 metres, NaN where there is no valid reading.

    ``16UC1``: uint16 millimetres, 0 invalid. ``32FC1``: float32 metres, non-finite, <= 0 or
    beyond :data:`MAX_DEPTH_M` invalid.
    """
    if encoding == '16UC1':  # at most 65.5 m: always below MAX_DEPTH_M
        metres = depth.astype(np.float32) * np.float32(0.001)
        metres[depth == 0] = np.nan
        return metres
    if encoding == '32FC1':
        metres = np.array(depth, dtype=np.float32, copy=True)
        with np.errstate(invalid='ignore'):
            metres[~np.isfinite(metres) | (metres <= 0) | (metres > MAX_DEPTH_M)] = np.nan
        return metres
    raise DepthMismatch(f"depth encoding '{encoding}' not supported; expected one of "
                        f'{", ".join(DEPTH_ENCODINGS)} (registered depth, mm or m)')


def intrinsics(k: Sequence[float]) -> Tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels from a row-major 3x3 camera matrix ``K`` (CameraInfo.k).

    Raises :class:`BadCameraInfo` unless all of K is finite and fx, fy lie in
    :data:`FOCAL_RANGE_PX` (0 and negative: an uncalibrated camera_info).
    """
    if len(k) != 9:
        raise BadCameraInfo(f'camera_info K must have 9 values, got {len(k)}')
    values = [float(v) for v in k]
    if not all(math.isfinite(v) for v in values):
        raise BadCameraInfo(f'camera_info K must be finite, got {values}')
    fx, fy, cx, cy = values[0], values[4], values[2], values[5]
    low, high = FOCAL_RANGE_PX
    if not (low <= fx <= high and low <= fy <= high):
        raise BadCameraInfo(f'camera_info K has fx={fx}, fy={fy}; expected both in '
                            f'{low:g}..{high:g} pixels (0: an uncalibrated camera_info '
                            'cannot make a cloud)')
    return fx, fy, cx, cy


def check_camera_info(info: Any,
                      image_shape: Tuple[int, ...]) -> Tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` of a CameraInfo-like ``info`` (fields ``k, d, width, height`` and,
    when present, ``binning_x, binning_y, roi``) that describes the depth image of
    ``image_shape`` ``(H, W[, ...])``; :class:`BadCameraInfo` naming what is implausible:

    * K: see :func:`intrinsics`; the principal point within one image size of the image;
    * D: finite, at most :data:`MAX_DISTORTION_COEFFS` values;
    * width x height (after binning, or the ROI when set) equal to the depth image's.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    fx, fy, cx, cy = intrinsics(info.k)
    d = [float(v) for v in info.d]
    if len(d) > MAX_DISTORTION_COEFFS or not all(math.isfinite(v) for v in d):
        raise BadCameraInfo(f'camera_info D must be at most {MAX_DISTORTION_COEFFS} finite '
                            f'values, got {len(d)} values'
                            + ('' if len(d) > MAX_DISTORTION_COEFFS else f' {d}'))
    bin_x = max(1, int(getattr(info, 'binning_x', 0) or 0))
    bin_y = max(1, int(getattr(info, 'binning_y', 0) or 0))
    roi = getattr(info, 'roi', None)
    size = (int(info.width), int(info.height))
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        size = (int(roi.width), int(roi.height))
    expected = (size[0] // bin_x, size[1] // bin_y)
    if expected != (width, height):
        raise BadCameraInfo(f'camera_info is for {expected[0]}x{expected[1]} images (width, '
                            f'height{", binning" if bin_x * bin_y > 1 else ""}) but the depth '
                            f'image is {width}x{height}')
    if not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
        raise BadCameraInfo(f'camera_info principal point ({cx:g}, {cy:g}) is far outside the '
                            f'{width}x{height} image')
    return fx, fy, cx, cy


def depth_to_xyz(metres: np.ndarray, fx: float, fy: float, cx: float,
                 cy: float) -> np.ndarray:
    """Back-project ``(H, W)`` metres through a pinhole camera: ``(H, W, 3)`` float32 x, y, z.

    ``x = (u - cx) * z / fx``, ``y = (v - cy) * z / fy`` for pixel column ``u`` and row ``v``;
    NaN depth gives NaN x, y, z.
    """
    height, width = metres.shape
    u = (np.arange(width, dtype=np.float32) - np.float32(cx)) / np.float32(fx)
    v = (np.arange(height, dtype=np.float32) - np.float32(cy)) / np.float32(fy)
    xyz = np.empty((height, width, 3), np.float32)
    xyz[..., 0] = metres * u[None, :]
    xyz[..., 1] = metres * v[:, None]
    xyz[..., 2] = metres
    return xyz


def point_dtype(with_confidence: bool) -> np.dtype:
    """Layout of one point: x, y, z float32, label uint16 (2 pad bytes)[, confidence float32]."""
    names: List[str] = ['x', 'y', 'z', 'label']
    formats: List[str] = ['<f4', '<f4', '<f4', '<u2']
    offsets = [0, 4, 8, 12]
    if with_confidence:
        names.append('confidence')
        formats.append('<f4')
        offsets.append(16)
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': 20 if with_confidence else 16})


def point_fields(with_confidence: bool) -> List[Tuple[str, int, int]]:
    """``(name, offset, PointField datatype)`` of every field, in order (count is 1 each)."""
    dtype = point_dtype(with_confidence)
    kinds = {'<f4': FLOAT32, '<u2': UINT16}
    fields: Mapping[str, Any] = dtype.fields or {}  # a structured dtype: never empty
    return [(name, fields[name][1], kinds[fields[name][0].str]) for name in dtype.names or ()]


def semantic_cloud(depth: np.ndarray, encoding: str, k: Sequence[float], labels: np.ndarray,
                   confidence: Optional[np.ndarray] = None) -> np.ndarray:
    """The organized cloud of one frame as a structured ``(H, W)`` array (see :func:`point_dtype`).

    Args:
        depth: ``(H, W)`` registered depth, uint16 mm (``16UC1``) or float32 m (``32FC1``).
        encoding: ``'16UC1'`` or ``'32FC1'``.
        k: Row-major 3x3 camera matrix of the depth (= colour) camera.
        labels: ``(H, W)`` class ids of the mask (uint8/uint16).
        confidence: Optional ``(H, W)`` float32 top-class probability in 0..1.

    Raises :class:`DepthMismatch` when sizes, encoding or intrinsics do not fit.
    """
    if depth.shape != labels.shape:
        raise DepthMismatch(f'depth image is {depth.shape[1]}x{depth.shape[0]} (WxH) but the '
                            f'mask is {labels.shape[1]}x{labels.shape[0]}; expected a depth '
                            'image registered to the colour camera (same size)')
    fx, fy, cx, cy = intrinsics(k)
    xyz = depth_to_xyz(depth_in_metres(depth, encoding), fx, fy, cx, cy)
    cloud = np.empty(labels.shape, point_dtype(confidence is not None))
    cloud['x'], cloud['y'], cloud['z'] = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    cloud['label'] = labels
    if confidence is not None:
        cloud['confidence'] = confidence
    return cloud


__all__ = ['BadCameraInfo', 'DEPTH_ENCODINGS', 'DepthMismatch', 'FLOAT32', 'FOCAL_RANGE_PX',
           'MAX_DEPTH_M', 'UINT16', 'check_camera_info', 'depth_in_metres', 'depth_to_xyz',
           'intrinsics', 'point_dtype', 'point_fields', 'semantic_cloud']
