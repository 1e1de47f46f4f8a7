"""The ROS 2 layer: the only subpackage that imports rclpy (``segmentation_node``).

``image_conversions`` and ``params`` are plain Python so they can be tested without ROS.
"""
