"""Metrics and evaluation tools (no ROS imports)."""
