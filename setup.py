"""ament_python package bisenet_ros (also installable with pip into a plain venv)."""

from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'bisenet_ros'


def share(*patterns: str):
    """(install dir, files) pairs for data_files, one per source directory."""
    groups = {}
    for pattern in patterns:
        for path in sorted(glob(pattern, recursive=True)):
            if os.path.isfile(path):
                groups.setdefault(os.path.dirname(path), []).append(path)
    return [(os.path.join('share', PACKAGE, d), files) for d, files in sorted(groups.items())]


ROS_WHEELS = ['ros-rclpy', 'ros-sensor-msgs', 'ros-std-msgs', 'ros-diagnostic-msgs',
              'ros-rmw-fastrtps-cpp', 'ros-wheels-bootstrapper']

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['data/*.pt', 'data/*.md', 'data/demo/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
    ] + share('launch/*.launch.py', 'config/**/*.yaml', 'config/**/*.xml'),
    python_requires='>=3.10',
    # Kept minimal: a colcon user gets rclpy, numpy, OpenCV and torch from ROS/rosdep.
    install_requires=['setuptools', 'numpy', 'PyYAML'],
    extras_require={
        # torch is unpinned on purpose; install the build you want (CPU or CUDA) first.
        'torch': ['torch>=2.1'],
        'cv': ['opencv-python-headless>=4.8'],
        'onnx': ['onnx>=1.15', 'onnxruntime>=1.17'],
        'openvino': ['onnx>=1.15', 'openvino>=2024.0'],
        'bag': ['rosbags>=0.10', 'matplotlib>=3.5', 'tqdm'],
        # ROS 2 from PyPI wheels, for the venv path without a system ROS install.
        'ros': ROS_WHEELS,
        'test': ['pytest', 'hypothesis'],
    },
    zip_safe=False,
    maintainer='bisenet_ros maintainers',
    maintainer_email='maintainers@bisenet-ros.invalid',
    description='BiSeNet V2 real-time semantic segmentation for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bisenet = bisenet_ros.cli:main',
            'segmentation_node = bisenet_ros.ros.segmentation_node:main',
            'segmentation_lifecycle_node = bisenet_ros.ros.segmentation_node:lifecycle_main',
        ],
    },
)
