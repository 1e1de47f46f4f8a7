"""Semantic point cloud: registered depth + intrinsics + mask -> organized cloud fields.

Pure numpy (no ROS imports). The cloud is *organized*: ``height x width`` points in the mask's
pixel order, so point ``(v, u)`` belongs to mask pixel ``(v, u)`` (what Nav2's
``semantic_segmentation_layer`` relies on). Coordinates follow the camera's optical frame
(REP 103/105: x right, y down, z forward, metres), the frame of the image and of the
registered depth. Pixels without a valid depth give NaN coordinates.

Depth encodings: ``16UC1`` in millimetres (0 = no reading) and ``32FC1`` in metres (NaN, inf and
values <= 0 = no reading). A depth image whose size differs from the mask is refused
(:class:`DepthMismatch`): a registered depth has the colour image's size, and resampling a
depth image silently would put points on the wrong pixels.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

#: ``sensor_msgs/PointField`` datatype constants used here.
UINT16, FLOAT32 = 4, 7
DEPTH_ENCODINGS = ('16UC1', '32FC1')


class DepthMismatch(ValueError):
    """Depth and camera_info cannot make a cloud for this mask; the message says why."""


def depth_in_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """``(H, W)`` depth -> float32 metres, NaN where there is no valid reading.

    ``16UC1``: uint16 millimetres, 0 invalid. ``32FC1``: float32 metres, non-finite or <= 0
    invalid.
    """
    if encoding == '16UC1':
        metres = depth.astype(np.float32) * np.float32(0.001)
        metres[depth == 0] = np.nan
        return metres
    if encoding == '32FC1':
        metres = np.array(depth, dtype=np.float32, copy=True)
        metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
        return metres
    raise DepthMismatch(f"depth encoding '{encoding}' not supported; expected one of "
                        f'{", ".join(DEPTH_ENCODINGS)} (registered depth, mm or m)')


def intrinsics(k: Sequence[float]) -> Tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels from a row-major 3x3 camera matrix ``K`` (CameraInfo.k)."""
    if len(k) != 9:
        raise DepthMismatch(f'camera_info K must have 9 values, got {len(k)}')
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if not (fx > 0 and fy > 0):
        raise DepthMismatch(f'camera_info K has fx={fx}, fy={fy}; expected both > 0 '
                            '(an uncalibrated camera_info cannot make a cloud)')
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
    return [(name, dtype.fields[name][1], kinds[dtype.fields[name][0].str])
            for name in dtype.names]


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


__all__ = ['DEPTH_ENCODINGS', 'DepthMismatch', 'FLOAT32', 'UINT16', 'depth_in_metres',
           'depth_to_xyz', 'intrinsics', 'point_dtype', 'point_fields', 'semantic_cloud']
