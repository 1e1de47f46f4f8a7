"""What the segmentation worker handles, as typed values: the outputs one camera wants, a decoded
frame waiting for inference, and how frames are grouped into inference calls. Plain Python.

Grouping rule (cameras isolated): one inference call holds frames of one network input size and
channel order only, and the calls run smallest first; the node publishes each call's outputs as
soon as it returns, so a camera with large frames never delays the results of smaller ones
taken with it. How often each camera is taken is shared fairly by
:class:`~bisenet_ros.ros.frame_slots.LatestFrameSlots`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .frame_slots import Frame


@dataclass(frozen=True)
class Outputs:
    """Which outputs to produce for one frame (each: switched on and subscribed to)."""

    mask: bool = False
    color_mask: bool = False
    overlay: bool = False
    confidence: bool = False
    confidence_mono8: bool = False
    points: bool = False
    camera_info: bool = False
    groups: bool = False

    @classmethod
    def from_flags(cls, flags: Mapping[str, bool]) -> 'Outputs':
        """From ``{output name: bool}`` (names missing are off)."""
        return cls(**{f.name: bool(flags.get(f.name, False)) for f in fields(cls)})

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    @property
    def color(self) -> bool:
        """The colour mask must be computed (for itself or for the overlay)."""
        return self.color_mask or self.overlay

    def needs_confidence(self, points_confidence: bool) -> bool:
        """Confidence must be computed (its images, or the cloud's confidence field)."""
        return self.confidence or self.confidence_mono8 or (self.points and points_confidence)


@dataclass
class WorkItem:
    """A frame decoded for inference.

    Attributes:
        frame: The frame as taken from its slot (``frame.msg`` is the deserialized message).
        image: ``(H, W, 3)`` uint8 pixels.
        is_bgr: Channel order of ``image`` (else RGB).
        outputs: What to publish for it.
        decode_s: Seconds spent deserializing and decoding.
    """

    frame: Frame
    image: np.ndarray
    is_bgr: bool
    outputs: Outputs
    decode_s: float

    @property
    def camera(self) -> int:
        return self.frame.camera

    @property
    def header(self) -> Any:
        return self.frame.msg.header


def inference_groups(work: List[WorkItem],
                     network_size: Optional[Tuple[int, int]]) -> List[List[WorkItem]]:
    """``work`` split into inference calls: equal network input size (``network_size``, or each
    image's own size when ``None``) and channel order; smallest size first, then camera order.
    """
    groups: Dict[Tuple[Tuple[int, int], bool], List[WorkItem]] = {}
    for item in work:
        size = network_size or (int(item.image.shape[0]), int(item.image.shape[1]))
        groups.setdefault((size, item.is_bgr), []).append(item)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0][0] * k[0][1],
                                                                 groups[k][0].camera))]
