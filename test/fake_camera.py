"""An RGB-D camera driver in its own process (not a test): colour, registered depth and
camera_info of each frame published back to back with SensorData QoS, as drivers do.

    python test/fake_camera.py DOMAIN RATE_HZ FRAMES HEIGHT WIDTH FIRST_STAMP_NS

Its Fast DDS settings are whatever its environment gives (FASTDDS_DEFAULT_PROFILES_FILE or
none), which is what the Nav2 transport test varies. It waits until each topic has a
subscriber, publishes FRAMES frames at RATE_HZ (stamps FIRST_STAMP_NS + i * 100 ms), prints
``sent N`` and exits.
"""

import sys
import time

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from bisenet_ros.image_conversions import fill_image
from ros_harness import pattern_image, Probe

COLOUR, DEPTH, INFO = ('/camera/color/image_raw', '/camera/aligned_depth_to_color/image_raw',
                       '/camera/aligned_depth_to_color/camera_info')


def main(argv):
    domain, rate, frames, height, width, first = (int(argv[0]), float(argv[1]), int(argv[2]),
                                                  int(argv[3]), int(argv[4]), int(argv[5]))
    camera = Probe(domain, name='fake_rgbd_camera')
    try:
        qos = qos_profile_sensor_data
        colour = camera.publisher(Image, COLOUR, qos)
        depth = camera.publisher(Image, DEPTH, qos)
        info = camera.publisher(CameraInfo, INFO, qos)
        for topic in (COLOUR, DEPTH, INFO):
            if not camera.wait_for_subscribers(topic, timeout=120):
                raise SystemExit(f'fake_camera: no subscriber on {topic} in 120 s')
        k = [300.0, 0.0, width / 2, 0.0, 300.0, height / 2, 0.0, 0.0, 1.0]
        plane = np.full((height, width), 1500, np.uint16)
        start = time.monotonic()
        for i in range(frames):
            image = camera.image_msg(pattern_image(height, width, seed=i % 3), 'bgr8',
                                     'camera_color_optical_frame', first + i * 100_000_000)
            depth_msg = fill_image(Image(), plane, '16UC1')
            info_msg = CameraInfo(height=height, width=width, k=k, distortion_model='plumb_bob')
            depth_msg.header = info_msg.header = image.header
            colour.publish(image)
            depth.publish(depth_msg)
            info.publish(info_msg)
            # the camera's frame clock: the next frame is due at start + (i + 1) / rate
            camera.wait_for(lambda: False, max(0.0, start + (i + 1) / rate - time.monotonic()))
        print(f'sent {frames}', flush=True)
    finally:
        camera.close()


if __name__ == '__main__':
    main(sys.argv[1:])
