"""The worker's typed values: output switches and the grouping of frames into inference calls."""

from dataclasses import fields

import numpy as np

from bisenet_ros.ros.camera_io import OUTPUTS
from bisenet_ros.ros.frame_slots import Frame
from bisenet_ros.ros.work import inference_groups, Outputs, WorkItem


def item(camera, h, w, bgr=True):
    return WorkItem(Frame(camera, None, 0.0), np.zeros((h, w, 3), np.uint8), bgr,
                    Outputs(mask=True), 0.0)


def test_outputs_name_every_published_output():
    assert [f.name for f in fields(Outputs)] == list(OUTPUTS)
    wanted = Outputs.from_flags({'overlay': True, 'points': True})
    assert wanted.any() and wanted.color and not wanted.needs_confidence(False)
    assert wanted.needs_confidence(True) and not Outputs().any()


def test_calls_hold_one_size_and_channel_order_smallest_first():
    big, small_a, small_b, rgb = item(0, 2160, 3840), item(1, 360, 480), item(2, 360, 480), \
        item(3, 360, 480, bgr=False)
    groups = inference_groups([big, small_a, rgb, small_b], None)
    assert [[w.camera for w in g] for g in groups] == [[1, 2], [3], [0]]
    # A fixed network size puts every frame of one channel order into one call.
    assert [[w.camera for w in g] for g in inference_groups([big, small_a, small_b], (64, 96))] \
        == [[0, 1, 2]]
