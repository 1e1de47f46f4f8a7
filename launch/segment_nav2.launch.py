"""The segmentation node set up for Nav2's semantic_segmentation_layer.

    ros2 launch bisenet_ros segment_nav2.launch.py \
        image_topic:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw

``segment.launch.py`` with the outputs the layer reads switched on: the mono8 mask, the mono8
confidence (``segmentation/confidence_mono8``), the organized cloud ``segmentation/points``
built from the registered depth (its camera_info beside it) and the latched
``segmentation/label_info``. ``config/nav2/semantic_costmap.yaml`` is an example costmap
for it.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = 'bisenet_ros'


def generate_launch_description() -> LaunchDescription:
    """Arguments of segment.launch.py (model, backend, namespace, max_rate, lifecycle, ...)
    pass through to it; ``--show-args`` lists them too."""
    share = get_package_share_directory(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/color/image_raw',
            description='Colour image topic of the RGB-D camera (sensor_msgs/Image).'),
        DeclareLaunchArgument(
            'depth_topic', default_value='/camera/aligned_depth_to_color/image_raw',
            description='Depth image registered to the colour camera (16UC1 mm or 32FC1 m); '
                        'its camera_info is read from the same namespace.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'segment.launch.py')),
            launch_arguments=[('image_topics', LaunchConfiguration('image_topic')),
                              ('depth_topic', LaunchConfiguration('depth_topic')),
                              ('confidence_mono8', 'true')]),
    ])
