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
    share = get_package_share_directory(PACKAGE)
    forwarded = ('model', 'backend', 'namespace', 'max_rate', 'lifecycle', 'log_level',
                 'params_file')
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/color/image_raw',
            description='Colour image topic of the RGB-D camera (sensor_msgs/Image).'),
        DeclareLaunchArgument(
            'depth_topic', default_value='/camera/aligned_depth_to_color/image_raw',
            description='Depth image registered to the colour camera (16UC1 mm or 32FC1 m); '
                        'its camera_info is read from the same namespace.'),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Model file; empty: the packaged CamVid model.'),
        DeclareLaunchArgument(
            'backend', default_value='',
            description='Inference runtime (auto, torch, onnxruntime, tensorrt, ...); empty: '
                        'the params file value.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node; its relative output topics follow it.'),
        DeclareLaunchArgument(
            'max_rate', default_value='',
            description='Most frames segmented per second; empty: the params file value.'),
        DeclareLaunchArgument(
            'lifecycle', default_value='false',
            description='true: the managed node, for a Nav2 lifecycle manager to bring up.'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Node log level: debug, info, warn, error.'),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'segmentation.yaml'),
            description='YAML file with the node parameters.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'segment.launch.py')),
            launch_arguments=[('image_topics', LaunchConfiguration('image_topic')),
                              ('depth_topic', LaunchConfiguration('depth_topic')),
                              ('confidence_mono8', 'true')]
            + [(name, LaunchConfiguration(name)) for name in forwarded]),
    ])
