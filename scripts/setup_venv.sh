#!/usr/bin/env bash
# Create ./.venv with everything bisenet_ros needs on a machine without a system ROS install:
# PyTorch (CPU build 2.13.0), ROS 2 rclpy and messages from PyPI wheels, ONNX Runtime, OpenCV,
# rosbags, the test tools, bisenet_ros itself (editable) and, when ../shared/ros2-wheels is
# there, the `ros2` CLI and launch stack. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
  echo "setup_venv: installing python3-venv with apt" >&2
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q && $SUDO apt-get install -y -q python3-venv
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
# torch first and alone, so no other requirement can pull a different (CUDA) build.
"${PIP[@]}" install 'torch==2.13.0'
"${PIP[@]}" install -r requirements-venv.txt
"${PIP[@]}" install --no-deps -e .
# The real ROS 2 CLI and launch stack (`ros2 launch|param|topic|lifecycle`, launch_ros,
# vision_msgs) for the launch and Nav2 tests, where ../shared/ros2-wheels exists (CI and these
# machines; not on a registry). --no-deps: their metadata names ament_index_python, which the
# ros-* wheels already provide as ros-ament-index-python. launch_testing's pytest plugin
# (broken under pytest 9) is switched off in setup.cfg; our tests drive `ros2 launch` directly.
WHEELS=${ROS2_WHEELS:-../shared/ros2-wheels}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "${PIP[@]}" install --no-deps "$WHEELS"/*.whl
  echo "setup_venv: installed the ros2 CLI wheels from $WHEELS" >&2
fi
echo "setup_venv: ready ($VENV)" >&2
