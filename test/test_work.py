"""The worker's typed values: the output switches (how frames are grouped into inference calls
is the Segmenter's, tested in test_segmenter)."""

from dataclasses import fields

from bisenet_ros.ros.camera_io import OUTPUTS
from bisenet_ros.ros.work import Outputs


def test_outputs_name_every_published_output():
    assert [f.name for f in fields(Outputs)] == list(OUTPUTS)
    wanted = Outputs.from_flags({'overlay': True, 'points': True})
    assert wanted.any() and wanted.color and not wanted.needs_confidence(False)
    assert wanted.needs_confidence(True) and not Outputs().any()
