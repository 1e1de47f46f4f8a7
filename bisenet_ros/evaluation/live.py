"""Live evaluation, pure side: frames -> wire messages, and received masks -> metrics.

:mod:`bisenet_ros.ros.clients.replay` does the ROS part (publish, receive, time); this module
prepares what it sends and scores what came back, matching each mask to its frame by header
stamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ..bags import messages
from ..labels import LabelSet
from .stream_eval import ModelStats, StreamEvaluation


@dataclass
class OutgoingFrame:
    """A frame to publish: header stamp (ns), offset from the first frame (s), Image CDR."""

    stamp_ns: int
    offset_s: float
    cdr: bytes


def outgoing_frames(frames: Sequence[Any]) -> List[OutgoingFrame]:
    """``Frame``s -> :class:`OutgoingFrame`s: bgr8 Image CDR with the recorded stamp and
    frame_id, offsets from the recorded (log) times of the bag."""
    if not frames:
        return []
    start = frames[0].log_time_ns
    return [OutgoingFrame(f.stamp_ns, (f.log_time_ns - start) / 1e9,
                          messages.image_cdr(f.image, f.stamp_ns, f.frame_id, 'bgr8'))
            for f in frames]


def evaluate_record(frames: Sequence[Any], record: Any, label_set: LabelSet,
                    name: str = 'node', details: Optional[Dict[str, Any]] = None,
                    listen_mode: bool = False, sample_every: int = 0,
                    max_samples: int = 6) -> StreamEvaluation:
    """Score the masks of a :class:`~bisenet_ros.ros.clients.replay.ReplayRecord` against
    ``frames``.

    A frame counts as dropped when no mask with its stamp arrived. Latency per frame is the
    mask's arrival minus the image's publication (replay) or arrival (``listen_mode``).
    """
    evaluation = StreamEvaluation([ModelStats(name, label_set, details)],
                                  sample_every=sample_every, max_samples=max_samples)
    first_mask: Dict[int, Any] = {}
    duplicates = 0
    for reception in record.masks:
        if reception.stamp_ns in first_mask:
            duplicates += 1
        else:
            first_mask[reception.stamp_ns] = reception
    origin = record.images if listen_mode else record.sent
    known = {f.stamp_ns for f in frames}
    considered = [f for f in frames if f.stamp_ns in origin] if listen_mode else list(frames)
    received = dropped = 0
    arrivals: List[float] = []
    for frame in considered:
        reception = first_mask.get(frame.stamp_ns)
        if reception is None:
            dropped += 1
            evaluation.add_frame(frame.index, frame.stamp_ns, frame.image, frame.ground_truth,
                                 [None])
            continue
        received += 1
        arrivals.append(reception.time_s)
        mask = messages.image_msg_to_array(
            messages.deserialize(reception.cdr, messages.IMAGE_TYPE), labels=True)
        timings = {'end_to_end': reception.time_s - origin[frame.stamp_ns]}
        evaluation.add_frame(frame.index, frame.stamp_ns, frame.image, frame.ground_truth,
                             [mask], [timings])
    sent = len(considered)
    scored = sum(1 for f in considered if f.ground_truth is not None
                 and f.stamp_ns in first_mask)
    span = (max(arrivals) - record.started_s) if arrivals else 0.0
    evaluation.info.frames = {
        'sent' if not listen_mode else 'images_seen': sent,
        'masks_received': received,
        'dropped': dropped,
        'dropped_share': round(dropped / sent, 4) if sent else None,
        'scored_against_ground_truth': scored,
        'masks_for_unknown_stamps': sum(1 for s in first_mask if s not in known),
        'duplicate_masks': duplicates,
        'output_fps': round(received / span, 3) if span > 0 else None,
    }
    if record.warmup_s is not None:
        evaluation.info.frames['warmup_wait_s'] = round(record.warmup_s, 3)
    return evaluation
