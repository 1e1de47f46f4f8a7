"""Style is checked like the rest: flake8 over the package, launch files, tests and benchmarks."""

import subprocess
import sys

from conftest import REPO_ROOT


def test_flake8_clean():
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', '--max-line-length', '99', 'bisenet_ros', 'test',
         'benchmarks', 'launch', 'setup.py'], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
