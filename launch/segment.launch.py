"""Launch the BiSeNet V2 segmentation node.

    ros2 launch bisenet_ros segment.launch.py
    ros2 launch bisenet_ros segment.launch.py image_topics:=/front/image_raw,/rear/image_raw \
        model:=/path/model.pt backend:=onnxruntime max_rate:=10 namespace:=robot1
    ros2 launch bisenet_ros segment.launch.py compressed:=true params_file:=/my/params.yaml
    ros2 launch bisenet_ros segment.launch.py depth_topic:=/camera/aligned_depth/image_raw
    ros2 launch bisenet_ros segment.launch.py lifecycle:=true autostart:=true

Node parameters come from ``params_file`` (default: ``config/segmentation.yaml`` in this
package's share directory); every argument left empty keeps the file's value. A value that
does not parse (``max_rate:=abc``, ``compressed:=maybe``) stops the launch with a message
naming the argument and the accepted values. The arguments, their descriptions and the
parameters they set are one table, ``bisenet_ros.ros.launch_args.ARGUMENTS`` (shared with
``segment_nav2.launch.py``); ``ros2 launch bisenet_ros segment.launch.py --show-args`` lists
them.
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


def _node(context, *args, **kwargs):
    """The node, with only the non-empty launch arguments overriding the params file.

    An argument that does not parse stops the launch with a message naming it and the
    accepted values (bisenet_ros.ros.launch_args).
    """
    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    given = {name: arg(name) for name in launch_args.PARAM_ARGS}
    overrides = launch_args.overrides(given, launch_args.PARAM_ARGS)
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
    defaults = {'params_file': _share('config', 'segmentation.yaml')}
    return LaunchDescription([
        DeclareLaunchArgument(a.name, default_value=defaults.get(a.name, a.default),
                              description=a.description)
        for a in launch_args.ARGUMENTS
    ] + [OpaqueFunction(function=_node)])
