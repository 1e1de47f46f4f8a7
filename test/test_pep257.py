"""Docstrings are checked like the code: pydocstyle (what ament_pep257 runs, declared in
package.xml) over the package, with the conventions of setup.cfg's ``[pydocstyle]``."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT


def test_pep257_clean():
    pytest.importorskip('pydocstyle', reason='pydocstyle is not installed (requirements-venv)')
    result = subprocess.run([sys.executable, '-m', 'pydocstyle', '--config', 'setup.cfg',
                             'bisenet_ros'], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
