"""The ROS 2 layer: the node code, the only subpackage that imports rclpy.

* The node: ``segmentation_node`` (plain and lifecycle), its publishers, subscriptions and
  model (``camera_io``, ``depth_input``, ``model_holder``) and its plain-Python parts, testable
  without ROS (``params``, ``frame_slots``, ``node_stats``, ``stamp_buffer``, ``point_cloud``,
  ``launch_args``).
* ``clients/``, a room of its own: the endpoints that talk to a node from outside,
  ``spin_thread`` (a node in its own context and executor thread; a callback's exception reaches
  the waiter), ``replay`` (bag evaluation over DDS) and ``node_process`` (the node in a child
  process, for ``eval-bag --start-node``). The node never imports them; they never import the
  node's files.

Message conversions shared with ``bags/`` live outside, in :mod:`bisenet_ros.image_conversions`;
test tooling lives in ``test/ros_harness.py``, outside the package.
"""
