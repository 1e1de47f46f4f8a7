"""benchmarks/gpu_check.sh runs on a CPU machine: every GPU part says "no CUDA", exit 0."""

import os
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_reports_no_cuda_cleanly_on_a_cpu_machine(tmp_path):
    torch = pytest.importorskip('torch')
    if torch.cuda.is_available():
        pytest.skip('a CUDA GPU is present: run benchmarks/gpu_check.sh itself there')
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run(['bash', str(ROOT / 'benchmarks' / 'gpu_check.sh'), '-n', '1'],
                          env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert 'no CUDA: CUDA tests skipped' in out
    assert 'no CUDA: torch' in out and 'GPU benchmarks skipped' in out
    assert 'tensorrt: ' in out and 'TensorRT part skipped' in out
    assert '== gpu_check exit 0' in out
    assert (tmp_path / 'gpu_check.json').is_file()
