"""The per-user artifact cache: where it is, keys, atomic entries, corruption, warm reuse."""

import logging
import os
from pathlib import Path
import time

import numpy as np
import pytest

from bisenet_ros.export.cache import (ArtifactCache, CACHE_ENV, cache_entries, cache_key,
                                      cache_root, model_digest, progress)


def test_the_cache_root_follows_the_override_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / 'forced'))
    assert cache_root() == tmp_path / 'forced'
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert cache_root() == tmp_path / 'xdg' / 'bisenet_ros'
    monkeypatch.delenv('XDG_CACHE_HOME')
    assert cache_root() == Path.home() / '.cache' / 'bisenet_ros'


def test_keys_change_with_content_runtime_version_precision_and_size(tmp_path):
    a, b = tmp_path / 'a.pt', tmp_path / 'b.pt'
    a.write_bytes(b'weights one')
    b.write_bytes(b'weights two')
    base = dict(model=model_digest(a), runtime='openvino 2025.1', precision='int8',
                size=[480, 640])
    key = cache_key(**base)
    assert cache_key(**dict(base)) == key  # stable
    assert cache_key(**{**base, 'model': model_digest(b)}) != key
    assert cache_key(**{**base, 'runtime': 'openvino 2025.2'}) != key
    assert cache_key(**{**base, 'precision': 'fp32'}) != key
    assert cache_key(**{**base, 'size': [512, 1024]}) != key
    a.write_bytes(b'weights one, retrained')  # same path, new content: new digest
    assert model_digest(a) != base['model']


def test_module_digest_follows_the_weights():
    torch = pytest.importorskip('torch')
    layer = torch.nn.Conv2d(3, 4, 3)
    first = model_digest(layer)
    assert model_digest(layer) == first
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] += 1.0
    assert model_digest(layer) != first


def test_entries_are_built_once_then_reused(tmp_path):
    cache = ArtifactCache('things', tmp_path)
    calls = []

    def build(target: Path) -> None:
        calls.append(target)
        assert target.parent == cache.folder  # built beside its final place
        target.write_bytes(b'artifact')

    path = cache.get_or_build('k1', '.bin', build, 'a thing')
    assert path.read_bytes() == b'artifact' and cache.valid(path)
    assert cache.get_or_build('k1', '.bin', build, 'a thing') == path
    assert len(calls) == 1 and cache.builds == 1
    assert sorted(p.name for p in cache.folder.iterdir()) == ['k1.bin', 'k1.bin.json']


def test_a_corrupt_or_unusable_entry_is_rebuilt_not_fatal(tmp_path, caplog):
    cache = ArtifactCache('things', tmp_path)
    path = cache.get_or_build('k', '.bin', lambda t: t.write_bytes(b'good'), 'a thing')
    path.write_bytes(b'bad!')  # same size, other bytes: a torn or tampered file
    with caplog.at_level(logging.WARNING):
        again = cache.get_or_build('k', '.bin', lambda t: t.write_bytes(b'good'), 'a thing')
    assert again.read_bytes() == b'good' and cache.builds == 2
    assert 'corrupt' in caplog.text
    (path.parent / (path.name + '.json')).write_text('{not json')
    cache.get_or_build('k', '.bin', lambda t: t.write_bytes(b'good'), 'a thing')
    assert cache.builds == 3

    def refuse(p: Path) -> None:
        raise ValueError('cannot parse')

    cache.get_or_build('k', '.bin', lambda t: t.write_bytes(b'good'), 'a thing', check=refuse)
    assert cache.builds == 4


def test_a_failed_build_leaves_no_entry_and_no_temp_file(tmp_path):
    cache = ArtifactCache('things', tmp_path)

    def fail(target: Path) -> None:
        target.write_bytes(b'half')
        raise RuntimeError('export failed')

    with pytest.raises(RuntimeError, match='export failed'):
        cache.get_or_build('k', '.bin', fail, 'a thing')
    assert list(cache.folder.iterdir()) == []


def test_records_round_trip_and_a_corrupt_record_reads_as_absent(tmp_path):
    cache = ArtifactCache('auto', tmp_path)
    assert cache.read_record('v') is None
    cache.write_record('v', {'agreement': 0.995})
    assert cache.read_record('v') == {'agreement': 0.995}
    cache.path('v', '.record.json').write_text('[1, 2')
    assert cache.read_record('v') is None


def test_progress_logs_start_heartbeat_and_end(caplog):
    import threading
    with caplog.at_level(logging.INFO):
        with progress('building a thing', every_s=0.01):
            threading.Event().wait(0.1)  # long enough for a heartbeat
    text = caplog.text
    assert 'building a thing: started' in text and 'still running' in text
    assert 'building a thing: done in' in text


def test_a_warm_start_reuses_the_export(tmp_path, monkeypatch):
    """A second backend on the same model exports nothing: the cached file is untouched."""
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.resources import default_model_path
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    image = np.full((64, 96, 3), 90, np.uint8)
    with Segmenter(default_model_path(), backend='onnxruntime', precision='fp32',
                   input_size=(64, 96), threads=1) as seg:
        cold = seg.segment(image).labels
    files = sorted((tmp_path / 'onnx').glob('*.onnx'))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    with Segmenter(default_model_path(), backend='onnxruntime', precision='fp32',
                   input_size=(64, 96), threads=1) as seg:
        assert np.array_equal(seg.segment(image).labels, cold)
    assert sorted((tmp_path / 'onnx').glob('*.onnx')) == files
    assert files[0].stat().st_mtime_ns == stamp


def test_a_warm_start_of_a_checkpoint_does_not_load_it(tmp_path, monkeypatch):
    """With the checkpoint's graph cached, a new process serves it without importing torch."""
    import os
    import subprocess
    import sys

    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed')
    from bisenet_ros.inference import Segmenter
    from bisenet_ros.resources import default_model_path
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with Segmenter(default_model_path(), backend='onnxruntime', precision='fp32',
                   threads=1) as seg:  # cold: loads the checkpoint, exports, caches
        cold = seg.segment(np.full((40, 60, 3), 90, np.uint8)).labels
    code = ('import sys, numpy as np\n'
            'from bisenet_ros.inference import Segmenter\n'
            'from bisenet_ros.resources import default_model_path\n'
            "seg = Segmenter(default_model_path(), backend='onnxruntime', precision='fp32', "
            'threads=1)\n'
            'labels = seg.segment(np.full((40, 60, 3), 90, np.uint8)).labels\n'
            "print(seg.label_set.name, seg.label_set.num_classes, 'torch' in sys.modules, "
            'labels.sum())\n')
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root),
                                                      os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['camvid', '11', 'False', str(cold.sum())], done.stdout


def _age(path, days):
    """Set ``path``'s access and modification times ``days`` days into the past."""
    when = time.time() - 86400 * days
    os.utime(path, (when, when))


def _fill_cache(root):
    """One entry of each layout, each last used ``n`` days ago as its name says."""
    onnx = ArtifactCache('onnx', root)
    built = onnx.get_or_build('k40', '.onnx', lambda p: p.write_bytes(b'x' * 1000), 'an export')
    ArtifactCache('auto', root).write_record('k10', {'agreement': 0.99})
    engines = root / 'tensorrt'
    engines.mkdir()
    (engines / 'm_fp16_480x640_k20.engine').write_bytes(b'e' * 3000)
    (engines / 'm_fp16_480x640_k20.json').write_text('{}')
    (root / 'openvino').mkdir()
    (root / 'openvino' / '123.blob').write_bytes(b'b' * 500)
    (root / 'onnx' / '.k5tmp.onnx').write_bytes(b'partial')  # an interrupted build
    for path, days in [(built, 40), (Path(str(built) + '.json'), 40),
                       (root / 'auto' / 'k10.record.json', 10),
                       (engines / 'm_fp16_480x640_k20.engine', 20),
                       (engines / 'm_fp16_480x640_k20.json', 20),
                       (root / 'openvino' / '123.blob', 30), (root / 'onnx' / '.k5tmp.onnx', 5)]:
        _age(path, days)
    return onnx, built


def test_cache_entries_group_sidecars_and_know_their_last_use(tmp_path):
    onnx, built = _fill_cache(tmp_path)
    entries = cache_entries(tmp_path)
    assert [(e.kind, [f.name for f in e.files]) for e in entries] == [
        ('onnx', ['k40.onnx', 'k40.onnx.json']), ('openvino', ['123.blob']),
        ('tensorrt', ['m_fp16_480x640_k20.engine', 'm_fp16_480x640_k20.json']),
        ('auto', ['k10.record.json']), ('onnx', ['.k5tmp.onnx'])]  # oldest use first
    assert entries[2].size == 3002 and entries[0].size == 1000 + built.with_name(
        'k40.onnx.json').stat().st_size
    # Reusing an entry (or reading a record) makes it used now; its build time stays.
    built_at = built.stat().st_mtime_ns
    assert onnx.find('k40', '.onnx', 'an export') == built
    ArtifactCache('auto', tmp_path).read_record('k10')
    recent = {e.files[0].name for e in cache_entries(tmp_path)
              if e.last_used > time.time() - 60}
    assert recent == {'k40.onnx', 'k10.record.json'}
    assert built.stat().st_mtime_ns == built_at
    assert cache_entries(tmp_path / 'missing') == []


def test_bisenet_cache_removes_what_was_not_used_for_days(tmp_path, monkeypatch, capsys):
    from bisenet_ros.cli import main
    _fill_cache(tmp_path)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert main(['cache', '--older-than', '15', '--dry-run']) == 0
    assert 'would remove 3 entries unused for 15 days' in capsys.readouterr().out
    assert len(cache_entries(tmp_path)) == 5
    assert main(['cache', '--older-than', '15']) == 0
    out = capsys.readouterr().out
    assert 'removed 3 of 3 entries unused for 15 days' in out and 'total        2 entries' in out
    assert sorted(e.files[0].name for e in cache_entries(tmp_path)) == ['.k5tmp.onnx',
                                                                        'k10.record.json']
    assert not list((tmp_path / 'tensorrt').iterdir())  # the engine and its sidecar
    assert main(['cache', '--clear']) == 0
    assert cache_entries(tmp_path) == []
    assert main(['cache', '--older-than', '-1']) == 1  # refused, nothing removed
