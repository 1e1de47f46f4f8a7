"""Implementations of the ``bisenet`` subcommands (no ROS imports unless stated)."""
