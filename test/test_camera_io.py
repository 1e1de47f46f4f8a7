"""camera_io.serialized_image: the node's outputs as serialized bytes equal the Image messages."""

import numpy as np
import pytest

pytest.importorskip('rclpy')

from rclpy.serialization import deserialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from bisenet_ros.image_conversions import ConversionError, fill_image  # noqa: E402
from bisenet_ros.ros.camera_io import serialized_image  # noqa: E402

CASES = [((5, 5), 'mono8', np.uint8), ((3, 7, 3), 'bgr8', np.uint8),
         ((4, 6, 3), 'rgb8', np.uint8), ((3, 3), 'mono16', np.uint16),
         ((2, 5), '32FC1', np.float32), ((480, 640, 3), 'rgb8', np.uint8)]


@pytest.mark.parametrize('shape,encoding,dtype', CASES)
@pytest.mark.parametrize('frame_id', ['', 'a', 'camera_optical_frame', 'ünï'])
def test_serialized_image_is_the_image_message(shape, encoding, dtype, frame_id):
    rng = np.random.default_rng(sum(shape))
    array = rng.integers(0, 250, shape).astype(dtype)
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = -3, 999_999_999
    expected = fill_image(Image(), array, encoding)
    expected.header = header
    raw = serialized_image(header, array, encoding)
    assert isinstance(raw, bytes), 'plain CDR here: the bytes path must be the one tested'
    assert deserialize_message(raw, Image) == expected


def test_serialized_image_takes_views_and_refuses_the_wrong_dtype():
    array = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    view = array[1:5, ::2, ::-1]  # strided, reversed channels
    msg = deserialize_message(serialized_image(Header(), view, 'rgb8'), Image)
    assert (msg.height, msg.width, msg.step) == (4, 4, 12)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(4, 4, 3),
                                  view)
    with pytest.raises(ConversionError, match=r"'mono8' needs a uint8 array .* got float32"):
        serialized_image(Header(), np.zeros((2, 2), np.float32), 'mono8')
