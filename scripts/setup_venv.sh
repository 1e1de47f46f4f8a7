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
# `ros2 launch|run|pkg bisenet_ros ...` without a colcon build: the venv is also an ament
# prefix. The editable install does not install setup.py's data_files, so the package's share
# files are linked here (symlinks to this checkout: edits to launch/ and config/ show at once),
# with the ament index marker and the executables where `ros2 run` looks (<prefix>/lib/<pkg>).
PREFIX=$(cd "$VENV" && pwd)
SHARE="$PREFIX/share/bisenet_ros"
mkdir -p "$SHARE" "$PREFIX/share/ament_index/resource_index/packages" "$PREFIX/lib/bisenet_ros"
: > "$PREFIX/share/ament_index/resource_index/packages/bisenet_ros"
for item in package.xml config launch; do
  rm -rf "${SHARE:?}/$item"
done
ln -s "$PWD/package.xml" "$SHARE/package.xml"
ln -s "$PWD/config" "$SHARE/config"
# `ros2 launch` finds launch files with os.walk, which does not enter linked folders: a real
# folder of linked files (a new launch file needs a rerun of this script).
mkdir "$SHARE/launch"
ln -s "$PWD"/launch/*.launch.py "$SHARE/launch/"
for exe in segmentation_node segmentation_lifecycle_node bisenet; do
  ln -sfn "$PREFIX/bin/$exe" "$PREFIX/lib/bisenet_ros/$exe"
done
# The activate scripts put the venv on AMENT_PREFIX_PATH (once; the block is replaced on a rerun).
BEGIN='# >>> bisenet_ros ament prefix >>>'
END='# <<< bisenet_ros ament prefix <<<'
add_block() {  # file, lines...
  local file=$1; shift
  [ -f "$file" ] || return 0
  sed -i "/^$BEGIN\$/,/^$END\$/d" "$file"
  { echo "$BEGIN"; printf '%s\n' "$@"; echo "$END"; } >> "$file"
}
add_block "$PREFIX/bin/activate" \
  'case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;;' \
  '  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac'
add_block "$PREFIX/bin/activate.fish" \
  'if not string match -q -- "*$VIRTUAL_ENV*" "$AMENT_PREFIX_PATH"' \
  '    set -gx AMENT_PREFIX_PATH (string join : -- $VIRTUAL_ENV $AMENT_PREFIX_PATH)' \
  'end'
add_block "$PREFIX/bin/activate.csh" \
  'if ($?AMENT_PREFIX_PATH) then' \
  '    setenv AMENT_PREFIX_PATH "${VIRTUAL_ENV}:${AMENT_PREFIX_PATH}"' \
  'else' \
  '    setenv AMENT_PREFIX_PATH "$VIRTUAL_ENV"' \
  'endif'
echo "setup_venv: ready ($VENV); 'source $VENV/bin/activate' then e.g. 'ros2 launch bisenet_ros segment.launch.py'" >&2
