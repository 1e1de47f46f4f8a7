"""scripts/train_gpu.sh on a CPU machine: without CUDA it refuses; ``--cpu-check`` runs its
resume path from a copy of a real CamVid training state, the state it writes resumes on the
CPU (also one shaped like a CUDA-written state), and ``adopt`` hands it to the CPU run."""

import csv
import hashlib
import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from bisenet_ros.training.config import load_config
from bisenet_ros.training.state import load_train_state
from bisenet_ros.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
CAMVID = ROOT.parent / 'shared' / 'datasets' / 'camvid'
SCRIPT = ROOT / 'scripts' / 'train_gpu.sh'


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """A tiny holdout run's config (the baseline's data and split; small crops, batch 2) and
    the folder of its CPU run, whose ``last.pt`` holds iteration 1."""
    if not CAMVID.is_dir():
        pytest.skip(f'CamVid not found at {CAMVID}')
    base = tmp_path_factory.mktemp('gpu_script')
    config = yaml.safe_load((ROOT / 'config/train/camvid_holdout_recipe.yaml').read_text())
    config['dataset']['root'] = str(CAMVID)
    config['train'].update(iterations=20, batch_size=2, crop=[64, 96], threads=1,
                           class_weights=None, warmup_iterations=2)
    config['val'] = {'every': 0, 'max_images': 2}
    config['log'] = {'every': 1, 'checkpoint_every': 1000, 'progress': 'log',
                     'tensorboard': False}
    config['output_dir'] = str(base / 'cpu_run')
    path = base / 'tiny.yaml'
    path.write_text(yaml.safe_dump(config))
    assert Trainer(load_config(path)).fit(stop_after=1) is None
    return path, base / 'cpu_run'


def _script(*args, **env):
    environ = dict(os.environ, PYTHON=sys.executable,
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
                   **{k: str(v) for k, v in env.items()})
    environ.pop('GPU_TRAIN_CPU_CHECK', None)
    done = subprocess.run(['bash', str(SCRIPT), *args], env=environ, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def _iterations(folder):
    with (folder / 'train_log.csv').open() as handle:
        return [int(row['iteration']) for row in csv.DictReader(handle)]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_cuda_it_says_so_and_trains_nothing(run, tmp_path):
    if torch.cuda.is_available():
        pytest.skip('a CUDA GPU is present: the refusal is for machines without one')
    config, cpu_run = run
    code, out = _script('resume', 'baseline', '5', CONFIG=config, SRC=cpu_run,
                        GPU_DIR=tmp_path / 'gpu')
    assert code == 3, out
    assert 'no CUDA GPU here' in out and '--cpu-check' in out
    assert not (tmp_path / 'gpu').exists()
    code, out = _script('resume', 'nonesuch', CONFIG=tmp_path / 'missing.yaml')
    assert code == 2 and 'no ' in out and 'baseline or recipe' in out
    code, out = _script('resume', 'baseline', '0', CONFIG=config)
    assert code == 2 and 'MINUTES must be a positive number' in out


def test_cpu_check_resumes_a_copy_and_the_cpu_run_adopts_what_it_wrote(run, tmp_path):
    config, cpu_run = run
    before = _digest(cpu_run / 'last.pt')
    work, gpu = tmp_path / 'work', tmp_path / 'gpu'
    code, out = _script('--cpu-check', 'resume', 'baseline', CONFIG=config, SRC=cpu_run,
                        GPU_DIR=gpu, WORK=work)
    assert code == 0, out
    assert '--cpu-check passed: 1 -> 3' in out and '3 -> 4 resumed on the CPU' in out
    assert _digest(cpu_run / 'last.pt') == before and not gpu.exists()  # only read
    state = load_train_state(work / 'last.pt')
    assert state['iteration'] == 4 and state['ema']['updates'] == 4
    assert _iterations(work) == [1, 2, 3, 4]  # the CPU run's log, continued
    assert not (work / 'final.pt').exists() and not (work / 'val_log.csv').exists()

    # a state written on CUDA also holds the AMP scaler and the CUDA RNG: the CPU ignores both
    state['scaler'] = {'scale': 32768.0, 'growth_factor': 2.0, 'backoff_factor': 0.5,
                       'growth_interval': 2000, '_growth_tracker': 7}
    state['rng']['cuda'] = [torch.get_rng_state()]
    shutil.copytree(work, gpu)
    torch.save(state, gpu / 'last.pt')

    src = tmp_path / 'cpu_copy'  # adopt writes the CPU run's folder: a copy of it
    shutil.copytree(cpu_run, src)
    code, out = _script('adopt', 'baseline', CONFIG=config, SRC=src, GPU_DIR=gpu)
    assert code == 0, out
    assert 'adopted' in out and 'scripts/train_holdout.sh baseline' in out
    assert load_train_state(src / 'last.pt')['iteration'] == 4
    assert _digest(src / 'before_gpu_1' / 'last.pt') == before
    code, out = _script('adopt', 'baseline', CONFIG=config, SRC=src, GPU_DIR=gpu)
    assert code == 0 and 'nothing to adopt' in out, out

    resumed = Trainer(load_config(config, [f'output_dir={src}']), resume=str(src / 'last.pt'))
    assert resumed.iteration == 4 and resumed.ema.updates == 4
    assert resumed.fit(stop_after=5) is None
    assert load_train_state(src / 'last.pt')['iteration'] == 5
    assert _iterations(src) == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_cpu_check_of_the_full_resolution_fine_tune(run, tmp_path):
    config, cpu_run = run
    code, out = _script('--cpu-check', 'finetune', 'baseline', CONFIG=config, SRC=cpu_run,
                        GPU_DIR=tmp_path / 'gpu', FT_DIR=tmp_path / 'full', WORK=tmp_path / 'w',
                        CHECK_ITERATIONS=1, FT_ITERATIONS=10)
    assert code == 0, out
    assert 'iteration 1 of 11' in out and '--cpu-check passed: 1 -> 2' in out
    state = load_train_state(tmp_path / 'w' / 'last.pt')
    assert state['iteration'] == 3
    assert state['config']['train']['crop'] == [360, 480]
    assert state['config']['train']['batch_size'] == 4
    assert state['config']['train']['iterations'] == 11
    assert not (tmp_path / 'full').exists()
