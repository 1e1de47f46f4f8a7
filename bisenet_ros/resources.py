"""Locate the package's shared files (``config/``) in every way the package can be installed.

Search order: the ament index (colcon workspace or ROS install), ``<sys.prefix>/share/bisenet_ros``
(pip install into a venv), then the source checkout this module lives in (development).
"""

from __future__ import annotations

import os
from pathlib import Path
import sys
from typing import List, Optional

PACKAGE_NAME = 'bisenet_ros'


def share_directories() -> List[Path]:
    """Candidate ``share/bisenet_ros`` directories, most specific first (may not all exist)."""
    candidates: List[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except Exception:  # not installed, not on AMENT_PREFIX_PATH, or no ament_index_python
        pass
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / PACKAGE_NAME)
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE_NAME)
    candidates.append(Path(__file__).resolve().parent.parent)  # source checkout
    unique: List[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def find_config_file(relative: str) -> Path:
    """Path of ``config/<relative>`` in the first share directory that has it.

    Raises:
        FileNotFoundError: naming every directory searched.
    """
    searched = []
    for share in share_directories():
        path = share / 'config' / relative
        if path.is_file():
            return path
        searched.append(str(path))
    raise FileNotFoundError(f"config file '{relative}' not found; searched: "
                            + ', '.join(searched))


#: Fast DDS profile for camera images between processes (``config/``): an 8 MiB shared-memory
#: segment. Without it, messages over ~0.5 MB fall back to fragmented UDP and best-effort
#: subscribers lose most of them (the file's comment has the measurements).
FASTDDS_PROFILE = 'fastdds_large_images.xml'


def large_message_profile() -> Optional[Path]:
    """Path of :data:`FASTDDS_PROFILE` for the processes of a replay, unless the user already
    chose a profile (``FASTDDS_DEFAULT_PROFILES_FILE``) or another RMW than Fast DDS (then
    ``None``).

    Raises:
        FileNotFoundError: the package's ``config/`` is not installed (names where it looked).
    """
    if os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE'):
        return None
    if os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return None
    return find_config_file(FASTDDS_PROFILE).resolve()


#: File name of the default model shipped inside the package (``bisenet_ros/data/``).
DEFAULT_MODEL_NAME = 'camvid_bisenetv2.pt'


def default_model_path() -> Path:
    """Path of the packaged default model (BiSeNet V2 trained on CamVid by this project).

    The file may be absent in a source checkout that predates it; callers that need it should
    check ``is_file()`` and report the path.
    """
    return Path(__file__).resolve().parent / 'data' / DEFAULT_MODEL_NAME
