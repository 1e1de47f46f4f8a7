"""The segmentation node set up for Nav2's semantic_segmentation_layer.

    ros2 launch bisenet_ros segment_nav2.launch.py \
        image_topics:=/camera/color/image_raw \
        depth_topic:=/camera/aligned_depth_to_color/image_raw

``segment.launch.py`` with the outputs the layer reads switched on: the mono8 mask, the mono8
confidence (``segmentation/confidence_mono8``), the organized cloud ``segmentation/points``
built from the registered depth (its camera_info beside it) and the latched
``segmentation/label_info``. It takes every argument of ``segment.launch.py`` (one table,
``bisenet_ros.ros.launch_args.ARGUMENTS``), with Nav2 defaults for ``image_topics``,
``depth_topic`` and ``confidence_mono8``, and passes each one through. ``image_topic`` is kept
for older command lines (one topic; when set it wins over ``image_topics``). The camera's
publisher needs the Fast DDS profile too (docs/nav2.md). ``config/nav2/semantic_costmap.yaml``
is an example costmap for it.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitution import Substitution
from launch.substitutions import LaunchConfiguration

from bisenet_ros.ros import launch_args

PACKAGE = 'bisenet_ros'


class _FirstSet(Substitution):
    """The first of the substitutions whose text is not blank ('' when none is)."""

    def __init__(self, *choices):
        super().__init__()
        self.choices = choices

    def perform(self, context):
        texts = (c.perform(context).strip() for c in self.choices)
        return next((t for t in texts if t), '')


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    defaults = dict(launch_args.NAV2_DEFAULTS,
                    params_file=os.path.join(share, 'config', 'segmentation.yaml'))
    passed = [(a.name, LaunchConfiguration(a.name)) for a in launch_args.ARGUMENTS]
    passed = [(name, _FirstSet(LaunchConfiguration('image_topic'), value)
               if name == 'image_topics' else value) for name, value in passed]
    return LaunchDescription([
        DeclareLaunchArgument(a.name, default_value=defaults.get(a.name, a.default),
                              description=a.description)
        for a in launch_args.ARGUMENTS
    ] + [
        DeclareLaunchArgument(
            'image_topic', default_value='',
            description='One colour image topic; same as image_topics (kept for older command '
                        'lines), wins when set.'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'segment.launch.py')),
            launch_arguments=passed),
    ])
