#!/usr/bin/env bash
# Create ./.venv with everything bisenet_ros needs on a machine without a system ROS install:
# PyTorch (CPU build 2.13.0), ROS 2 rclpy and messages from PyPI wheels, ONNX Runtime, OpenCV,
# rosbags, the test tools, and bisenet_ros itself (editable). Safe to run again.
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
echo "setup_venv: ready ($VENV)" >&2
