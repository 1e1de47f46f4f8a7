"""Launch the BiSeNet V2 segmentation node.

    ros2 launch bisenet_ros segment.launch.py
    ros2 launch bisenet_ros segment.launch.py image_topics:=/front/image_raw,/rear/image_raw \
        model:=/path/model.pt backend:=onnxruntime max_rate:=10 namespace:=robot1
    ros2 launch bisenet_ros segment.launch.py compressed:=true params_file:=/my/params.yaml

Node parameters come from ``params_file`` (default: ``config/segmentation.yaml`` in this
package's share directory); every argument left empty keeps the file's value.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'bisenet_ros'


def _share(*parts):
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


def _node(context, *args, **kwargs):
    """The node, with only the non-empty launch arguments overriding the params file."""
    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    overrides = {}
    topics = [t.strip() for t in arg('image_topics').split(',') if t.strip()]
    if topics:
        overrides['image_topics'] = topics
    if arg('model'):
        overrides['model_path'] = arg('model')
    if arg('backend'):
        overrides['backend'] = arg('backend')
    if arg('max_rate'):
        overrides['max_rate'] = float(arg('max_rate'))
    if arg('compressed'):
        overrides['compressed'] = arg('compressed').lower() in ('true', '1', 'yes')
    env = {}
    if arg('use_fastdds_profile').lower() in ('true', '1', 'yes'):
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = _share('config', 'fastdds_large_images.xml')
    return [Node(
        package=PACKAGE,
        executable='segmentation_node',
        name='segmentation_node',
        namespace=arg('namespace'),
        parameters=[arg('params_file')] + ([overrides] if overrides else []),
        ros_arguments=['--log-level', arg('log_level')],
        additional_env=env,
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument(
            'image_topics', default_value='',
            description='Input image topic, or several separated by commas (one model, '
                        'batched; outputs under segmentation/<camera>/). Empty: the params '
                        "file's image_topics (default /camera/image_raw)."),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Model file (.pt/.pth checkpoint, .onnx, TensorRT .engine). Empty: the '
                        "params file's model_path (default: the packaged CamVid model)."),
        DeclareLaunchArgument(
            'backend', default_value='',
            description='Inference runtime: auto, torch, onnxruntime or tensorrt. Empty: the '
                        "params file's backend (auto)."),
        DeclareLaunchArgument(
            'params_file', default_value=_share('config', 'segmentation.yaml'),
            description='YAML file with the node parameters.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node; its relative output topics follow it.'),
        DeclareLaunchArgument(
            'max_rate', default_value='',
            description='Most frames segmented per second per camera (0: unlimited). Empty: '
                        'the params file value.'),
        DeclareLaunchArgument(
            'compressed', default_value='',
            description='true: subscribe to sensor_msgs/CompressedImage on <topic>/compressed. '
                        'Empty: the params file value.'),
        DeclareLaunchArgument(
            'use_fastdds_profile', default_value='true',
            description='Give the node the Fast DDS profile config/fastdds_large_images.xml '
                        '(large shared-memory segment: without it, images over ~0.5 MB are '
                        'mostly lost between processes with best-effort QoS). Subscribers '
                        'should load it too (FASTDDS_DEFAULT_PROFILES_FILE).'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Node log level: debug, info, warn, error.'),
        OpaqueFunction(function=_node),
    ])
