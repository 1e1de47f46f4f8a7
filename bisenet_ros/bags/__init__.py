"""ROS bags without a ROS graph: write datasets as bags, read any rosbag2/ROS 1 bag.

Pure Python (``rosbags`` library, or ``rosbag2_py`` when a ROS 2 install provides it); no rclpy.
"""
