"""The one way to open a user's file (names, kinds, size and time bounds, OS errors) and the
one way to write an artifact (temp file in the same folder, then ``os.replace``)."""

import os
from pathlib import Path
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from bisenet_ros.limits import LimitError, MAX_TEXT_BYTES
from bisenet_ros.user_files import (atomic_path, check_file, describe_mode, load_yaml,
                                    MissingFileError, name_problem, read_bytes, read_head,
                                    read_text, UserFileError, write_atomic)


def test_text_files_are_bounded_and_os_errors_become_one_clear_error(tmp_path):
    small = tmp_path / 'ok.yaml'
    small.write_text('a: 1\n')
    assert read_text(small, 'label set') == 'a: 1\n'
    assert load_yaml(small, 'label set') == {'a': 1}
    big = tmp_path / 'big.yaml'
    big.write_bytes(b'#' * (MAX_TEXT_BYTES + 1))
    with pytest.raises(LimitError, match=f'{MAX_TEXT_BYTES + 1} bytes, more than'):
        read_text(big, 'label set')
    with pytest.raises(MissingFileError, match=r'params file .*missing.yaml: cannot read '
                                               r'\(No such file or directory\)') as info:
        read_text(tmp_path / 'missing.yaml', 'params file')
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    binary = tmp_path / 'bin.yaml'
    binary.write_bytes(b'\xff\xfe\x00')
    with pytest.raises(UserFileError, match='not UTF-8'):
        read_text(binary, 'params file')
    with pytest.raises(UserFileError, match=r'cannot read \(Not a directory\)'):
        read_text(small / 'below_a_file', 'params file')


def test_a_file_reporting_size_0_is_still_bounded():
    """``/proc`` files say 0 bytes and hold more: the read itself is bounded."""
    assert read_bytes('/proc/self/status', 'label set', 1 << 16).startswith(b'Name:')
    with pytest.raises(UserFileError, match='more than the 16 bytes allowed'):
        read_bytes('/proc/self/status', 'label set', 16)


def test_what_is_not_a_regular_file_is_named_as_what_it_is(tmp_path):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / 'sock'))
    (tmp_path / 'dangling').symlink_to(tmp_path / 'nowhere')
    try:
        for path, kind in ((tmp_path, 'is a folder'), (fifo, 'is a FIFO'),
                           ('/dev/null', 'is a character device'),
                           (tmp_path / 'sock', 'is a socket'),
                           (tmp_path / 'dangling', 'a symbolic link to nothing')):
            for call in (lambda p: check_file(p, 'model file'),
                         lambda p: read_bytes(p, 'model file', 100),
                         lambda p: read_head(p, 'model file', 100)):
                with pytest.raises(UserFileError, match=kind):
                    call(path)
    finally:
        sock.close()
    assert describe_mode(os.stat(tmp_path).st_mode) == 'folder'
    assert describe_mode(stat.S_IFBLK) == 'block device'


@pytest.mark.parametrize('name,reason', [
    ('model\x00.pt', 'contains a NUL byte'),
    ('x' * 300 + '.pt', 'a part of the path is 303 bytes long, over the limit of 255'),
    ('/'.join(['d' * 200] * 25), 'over the limit of 4095'),
    ('', 'empty path'),
])
def test_names_the_os_would_cut_or_refuse_are_refused_with_the_reason(name, reason):
    assert reason in name_problem(name)
    with pytest.raises(UserFileError, match=reason):
        check_file(name, 'model file')
    with pytest.raises(UserFileError, match=reason):
        read_text(name, 'label set')


def test_a_message_never_echoes_a_huge_or_nul_laden_name():
    with pytest.raises(UserFileError) as info:
        check_file('a' * 10_000, 'label set')
    assert len(str(info.value)) < 400
    with pytest.raises(UserFileError) as info:
        check_file('a\x00b', 'label set')
    assert '\x00' not in str(info.value) and '<NUL>' in str(info.value)


def test_a_read_that_never_returns_is_refused_after_the_time_bound(tmp_path):
    fifo = tmp_path / 'silent_fifo'
    os.mkfifo(fifo)  # nobody ever writes: a blocking open would wait forever
    started = time.monotonic()
    with pytest.raises(UserFileError, match=r'no answer within 0.3 s'):
        read_text(fifo, 'params file', timeout_s=0.3, allow_pipe=True)
    assert time.monotonic() - started < 10  # the caller was released, not blocked


def test_a_pipe_is_read_to_its_end_when_allowed(tmp_path):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text('a: 2\n'))
    writer.start()
    try:
        assert read_text(fifo, 'params file', allow_pipe=True) == 'a: 2\n'
    finally:
        writer.join(10)
    with pytest.raises(UserFileError, match='is a FIFO'):
        read_text(fifo, 'label set')  # not allowed: refused without opening it


def test_atomic_write_replaces_whole_and_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / 'model.onnx'
    write_atomic(target, b'good model')
    assert target.read_bytes() == b'good model'
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_bytes(b'half a mod')
            raise RuntimeError('disk full')
    assert target.read_bytes() == b'good model'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']  # no temp left


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_write_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    """A real EFBIG (RLIMIT_FSIZE in a child process): the good file survives."""
    target = tmp_path / 'model.onnx'
    target.write_bytes(b'good model')
    code = ('import sys; from bisenet_ros.user_files import write_atomic\n'
            'try:\n    write_atomic(sys.argv[1], b"x" * 100000)\n'
            'except OSError as exc:\n    print(exc.errno)\n')

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    run = subprocess.run([sys.executable, '-c', code, str(target)], capture_output=True,
                         text=True, preexec_fn=limit, env=dict(os.environ, PYTHONPATH=str(
                             Path(__file__).resolve().parents[1])))
    assert run.stdout.strip() == '27', run  # EFBIG
    assert target.read_bytes() == b'good model'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['model.onnx']
