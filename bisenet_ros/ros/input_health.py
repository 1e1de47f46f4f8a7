"""Why a frame got no cloud: transport loss, unsynchronised stamps or lateness, told apart from
the messages each input delivered. Plain Python (no rclpy).

The node counts, per camera, the colour frames, depth images and camera_infos received, and
for a frame without a cloud asks :func:`missing_cloud_cause` which of three causes fits:

- far fewer depth images (or camera_infos) than colour frames arrive: they are lost between
  the processes; with Fast DDS the usual cause is the camera process's 512 KiB shared-memory
  segment, which cannot hold one frame's colour + depth burst (docs/nav2.md);
- they arrive, but the nearest stamp is further from the frame's than
  ``depth_stamp_tolerance``: the driver does not stamp them together (or another clock);
- they arrive with matching stamps, only after ``depth_wait``: the camera process is late.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
from typing import Dict, Optional

#: Below this share of the colour frames, depth or camera_info counts as lost in transport.
DELIVERED_SHARE = 0.8
#: What the camera process needs when depth is lost (the README and docs/nav2.md say how).
PROFILE_HINT = ('the camera process needs a Fast DDS shared-memory segment that holds one '
                "frame's colour + depth: export FASTDDS_DEFAULT_PROFILES_FILE=<share>/"
                'bisenet_ros/config/fastdds_large_images.xml where the camera driver starts '
                '(docs/nav2.md)')


@dataclass
class InputCounts:
    """Messages one camera's inputs delivered, and the node's clouds; thread-safe updates."""

    colour: int = 0
    depth: int = 0
    camera_info: int = 0
    clouds: int = 0
    clouds_missing: int = 0
    camera_info_rejected: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, name: str) -> None:
        """One more message (or cloud) counted under ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def as_values(self) -> Dict[str, str]:
        """``/diagnostics`` key/values."""
        return {'colour_received': str(self.colour), 'depth_received': str(self.depth),
                'camera_info_received': str(self.camera_info), 'clouds_published':
                str(self.clouds), 'clouds_missing': str(self.clouds_missing),
                'camera_info_rejected': str(self.camera_info_rejected)}


def missing_cloud_cause(counts: InputCounts, depth_gap_s: Optional[float],
                        info_gap_s: Optional[float], tolerance_s: float,
                        wait_s: float) -> str:
    """The likely cause of a frame without a cloud, in one sentence.

    Args:
        counts: What the camera's inputs delivered so far.
        depth_gap_s, info_gap_s: Seconds from the frame's stamp to the nearest depth image /
            camera_info held (None: none held).
        tolerance_s: ``depth_stamp_tolerance``.
        wait_s: ``depth_wait``.
    """
    colour = max(counts.colour, 1)
    lost = [(name, n) for name, n in (('depth images', counts.depth),
                                      ('camera_infos', counts.camera_info))
            if n < DELIVERED_SHARE * colour]
    if lost:
        got = ' and '.join(f'{n} {name}' for name, n in lost)
        return (f'transport loss: {got} received for {counts.colour} colour frames; '
                f'{PROFILE_HINT}')
    gaps = [(name, gap) for name, gap in (('depth', depth_gap_s), ('camera_info', info_gap_s))
            if gap is not None and gap > tolerance_s]
    if gaps:
        name, gap = gaps[0]
        return (f'timing: {name} arrives ({counts.depth} depth images for {counts.colour} '
                f"colour frames) but its nearest stamp is {1000 * gap:.1f} ms from the frame's, "
                f'over depth_stamp_tolerance {1000 * tolerance_s:.1f} ms: the driver does not '
                'stamp colour and depth together (or they use different clocks)')
    return (f'late: depth and camera_info of this stamp did not arrive within depth_wait '
            f'{wait_s} s although they arrive as often as colour frames; raise depth_wait or '
            'unload the camera process')
