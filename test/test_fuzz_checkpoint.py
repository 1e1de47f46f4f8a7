"""Hostile checkpoint files: whatever the bytes, read_checkpoint raises CheckpointError only."""

import io

from hypothesis import given, HealthCheck, settings, strategies as st
import pytest
import torch

from bisenet_ros.model import build_model, CheckpointError, read_checkpoint


@pytest.fixture(scope='module')
def small_checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(build_model('bisenetv2', 2).state_dict(), buffer)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_checkpoint_is_read_or_refused_cleanly(tmp_path, small_checkpoint_bytes, data):
    blob = bytearray(small_checkpoint_bytes)
    cut = data.draw(st.integers(0, len(blob)), label='cut')
    flips = data.draw(st.lists(st.integers(0, len(blob) - 1), max_size=8), label='flips')
    for index in flips:
        blob[index] ^= 0xFF
    path = tmp_path / 'mutated.pth'
    path.write_bytes(bytes(blob[:cut] if cut < len(blob) else blob))
    try:
        state, info = read_checkpoint(path)
    except CheckpointError as exc:
        assert 'mutated.pth' in str(exc)
        return
    assert info.num_classes == 2 and state


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=3000))
def test_random_bytes_are_refused(tmp_path, blob):
    path = tmp_path / 'random.pth'
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match='random.pth'):
        read_checkpoint(path)
