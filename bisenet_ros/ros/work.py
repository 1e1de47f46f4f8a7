"""What the segmentation worker handles, as typed values: the outputs one camera wants and a
decoded frame waiting for inference. Plain Python.

How frames are grouped into inference calls is the Segmenter's
(:meth:`~bisenet_ros.inference.Segmenter.segment_groups`); how often each camera is taken is
shared fairly by :class:`~bisenet_ros.ros.frame_slots.LatestFrameSlots`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..images import ColorImage
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
        image: The decoded pixels with their channel order (validated when decoded).
        outputs: What to publish for it.
        decode_s: Seconds spent deserializing and decoding.
    """

    frame: Frame
    image: ColorImage
    outputs: Outputs
    decode_s: float

    @property
    def camera(self) -> int:
        return self.frame.camera

    @property
    def header(self) -> Any:
        return self.frame.msg.header
