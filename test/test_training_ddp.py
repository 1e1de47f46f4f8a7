"""Two-process DistributedDataParallel training on CPU (gloo) through torchrun."""

import socket
import subprocess
import sys

import pytest
import yaml

from bisenet_ros.training.synthetic import write_toy_dataset


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_run_writes_logs_and_final_checkpoint(tmp_path):
    spec = write_toy_dataset(tmp_path / 'data', train=4, val=2, size=(32, 64))
    config = {
        'dataset': spec,
        'train': {'iterations': 3, 'batch_size': 4, 'crop': [32, 64], 'scale_range': [0.75, 1.25],
                  'warmup_iterations': 1, 'threads': 1, 'lr': 0.01},
        'val': {'every': 2},
        'log': {'every': 1, 'checkpoint_every': 2, 'tensorboard': False, 'progress': 'log'},
        'output_dir': str(tmp_path / 'run'),
    }
    (tmp_path / 'ddp.yaml').write_text(yaml.safe_dump(config))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
           f'--master_port={_free_port()}', '-m', 'bisenet_ros.tools.train',
           '--config', str(tmp_path / 'ddp.yaml')]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / 'run'
    rows = (run / 'train_log.csv').read_text().splitlines()
    assert [r.split(',')[0] for r in rows[1:]] == ['1', '2', '3']  # rank 0 writes, once
    assert len((run / 'val_log.csv').read_text().splitlines()) == 3  # header, it 2, final
    assert (run / 'final.pt').is_file() and (run / 'last.pt').is_file()
    from bisenet_ros.model.checkpoint import load_model
    model = load_model(run / 'final.pt')
    assert model.label_set.name == 'toy3'
    assert model.checkpoint_info.meta['iterations'] == 3
    assert 'world_size=2' in proc.stderr or 'distributed' in proc.stderr.lower()
