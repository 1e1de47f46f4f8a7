"""Launch the BiSeNet V2 segmentation node.

    ros2 launch bisenet_ros segment.launch.py
    ros2 launch bisenet_ros segment.launch.py image_topics:=/front/image_raw,/rear/image_raw \
        model:=/path/model.pt backend:=onnxruntime max_rate:=10 namespace:=robot1
    ros2 launch bisenet_ros segment.launch.py compressed:=true params_file:=/my/params.yaml
    ros2 launch bisenet_ros segment.launch.py depth_topic:=/camera/aligned_depth/image_raw
    ros2 launch bisenet_ros segment.launch.py lifecycle:=true

Node parameters come from ``params_file`` (default: ``config/segmentation.yaml`` in this
package's share directory); every argument left empty keeps the file's value. A value that
does not parse (``max_rate:=abc``, ``compressed:=maybe``) stops the launch with a message
naming the argument and the accepted values. ``ros2 launch bisenet_ros segment.launch.py
--show-args`` lists every argument.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bisenet_ros.ros import launch_args

PACKAGE = 'bisenet_ros'


def _share(*parts):
    return os.path.join(get_package_share_directory(PACKAGE), *parts)


#: Launch argument -> node parameter it overrides when not empty.
PARAM_ARGS = {'image_topics': 'image_topics', 'model': 'model_path', 'backend': 'backend',
              'max_rate': 'max_rate', 'compressed': 'compressed', 'depth_topic': 'depth_topic',
              'confidence_mono8': 'publish_confidence_mono8'}


def _node(context, *args, **kwargs):
    """The node, with only the non-empty launch arguments overriding the params file.

    An argument that does not parse stops the launch with a message naming it and the
    accepted values (bisenet_ros.ros.launch_args).
    """
    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    given = {name: arg(name) for name in PARAM_ARGS}
    overrides = launch_args.overrides(given, PARAM_ARGS)
    env = {}
    if launch_args.parse_bool('use_fastdds_profile', arg('use_fastdds_profile')):
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = _share('config', 'fastdds_large_images.xml')
    lifecycle = launch_args.parse_bool('lifecycle', arg('lifecycle'))
    return [Node(
        package=PACKAGE,
        executable='segmentation_lifecycle_node' if lifecycle else 'segmentation_node',
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
                        'Booleans take true/false, yes/no, on/off, 1/0. Empty: the params file '
                        'value.'),
        DeclareLaunchArgument(
            'depth_topic', default_value='',
            description='Depth image registered to the camera (16UC1 mm or 32FC1 m; its '
                        'camera_info beside it): publishes the organized cloud '
                        'segmentation/points. Empty: the params file value (no cloud).'),
        DeclareLaunchArgument(
            'confidence_mono8', default_value='',
            description='true: also publish segmentation/confidence_mono8 (0-255), as Nav2 '
                        "semantic layers read it. Empty: the params file value."),
        DeclareLaunchArgument(
            'lifecycle', default_value='false',
            description='true: run the managed (lifecycle) node; it waits unconfigured for '
                        '`ros2 lifecycle set /segmentation_node configure` and `activate`.'),
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
