"""ros/clients/node_process.py: the node in a child process (eval-bag --start-node), its
environment, log and exit code. Stopping a serving node is tested by the node tests (SIGINT,
SIGTERM)."""

import os
from pathlib import Path

import bisenet_ros
from bisenet_ros.ros.clients.node_process import NodeProcess, ros_env


def test_ros_env_keeps_the_child_on_this_machine_with_this_package(tmp_path):
    env = ros_env(123, fastdds_profile=str(tmp_path / 'profile.xml'))
    assert env['ROS_DOMAIN_ID'] == '123'
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'] == str(tmp_path / 'profile.xml')
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == os.environ.get(
        'ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    first = env['PYTHONPATH'].split(os.pathsep)[0]
    assert Path(first) == Path(bisenet_ros.__file__).resolve().parents[1]


def test_a_refused_parameter_ends_the_child_with_its_reason_in_the_log(tmp_path):
    log = tmp_path / 'not' / 'yet' / 'node.log'  # the folder is made
    node = NodeProcess({'max_rate': -1.0}, 123, log_path=log)
    assert node.proc.wait(120) != 0
    assert not node.alive()
    code = node.stop()
    assert code == node.returncode != 0
    assert node.log_path == log and 'max_rate' in log.read_text()
    assert 'max_rate' in node.log()
    assert node.command[1:4] == ['-m', 'bisenet_ros.ros.segmentation_node', '--ros-args']
