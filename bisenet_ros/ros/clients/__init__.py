"""Clients of the segmentation node: the endpoints that talk to it from outside.

Used by ``bisenet eval-bag --live``, the tests and the benchmarks, never by the node itself:

* ``spin_thread``: one rclpy node in its own context and executor thread; the first exception a
  callback raises reaches the waiter.
* ``replay``: replay a bag's frames through a running node (or listen while someone else plays
  it) and record every mask with its arrival time.
* ``node_process``: the node in a child process with its own environment (``eval-bag
  --start-node``); no rclpy import, the child is the ROS process.
"""
