"""Every source file parses on the oldest supported Python (3.10, Humble and Jetson) and the
newest (3.12), and no code runs a shell with user-supplied strings."""

import ast
import os
from pathlib import Path
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT

SOURCES = sorted(p for pattern in ('bisenet_ros/**/*.py', 'launch/*.py', 'test/*.py',
                                   'benchmarks/*.py', 'setup.py')
                 for p in REPO_ROOT.glob(pattern))
PARSE = ('import ast, sys\n'
         'for path in sys.argv[1:]:\n'
         '    ast.parse(open(path, encoding="utf-8").read(), filename=path)\n')


def _interpreter(version: str):
    """A working ``python<version>`` (pyenv install or PATH), or None."""
    pyenv_root = Path(os.environ.get('PYENV_ROOT', Path.home() / '.pyenv'))
    candidates = sorted(pyenv_root.glob(f'versions/{version}.*/bin/python{version}'))
    candidates += [Path(p) for p in [shutil.which(f'python{version}')] if p]
    for candidate in candidates:
        probe = subprocess.run([str(candidate), '-c', 'pass'], capture_output=True)
        if probe.returncode == 0:
            return str(candidate)
    return None


@pytest.mark.parametrize('version', ['3.10', '3.12'])
def test_sources_parse_on_python(version):
    interpreter = _interpreter(version)
    if interpreter is None:  # fall back to this interpreter's parser in that grammar
        minor = int(version.split('.')[1])
        for path in SOURCES:
            ast.parse(path.read_text(), filename=str(path), feature_version=(3, minor))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(('_ROS', 'PYTHON'))}
    result = subprocess.run([interpreter, '-c', PARSE, *map(str, SOURCES)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_no_shell_execution_anywhere():
    offenders = []
    for path in SOURCES:
        if path.parent.name == 'test':
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == 'shell' and \
                    not (isinstance(node.value, ast.Constant) and node.value.value is False):
                offenders.append(f'{path}:{node.value.lineno} shell=')
            if isinstance(node, ast.Attribute) and node.attr in ('system', 'popen') and \
                    isinstance(node.value, ast.Name) and node.value.id == 'os':
                offenders.append(f'{path}:{node.lineno} os.{node.attr}')
    assert offenders == []
