"""Hostile bag and dataset files: reading either works or fails with the readers' own errors."""

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from bisenet_ros.bags.make import BagTopics, write_frames_bag
from bisenet_ros.bags.messages import MessageError
from bisenet_ros.bags.reader import BagError, BagReader
from bisenet_ros.evaluation.bag_frames import BagFrames, resolve_image_topic, \
    resolve_label_topic
from bisenet_ros.image_conversions import ConversionError

CLEAN_ERRORS = (BagError, MessageError, ConversionError)


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def bag_bytes(request, tmp_path_factory):
    path = tmp_path_factory.mktemp('bag') / 'bag'
    rng = np.random.default_rng(0)
    frames = [(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8),
               rng.integers(0, 11, (6, 8), dtype=np.uint8)) for _ in range(3)]
    write_frames_bag(lambda i: frames[i], range(3), path, storage=request.param, rate_hz=5.0,
                     frame_id='cam', topics=BagTopics())
    data_file = next(p for p in path.iterdir() if p.name != 'metadata.yaml')
    return data_file.name, data_file.read_bytes(), (path / 'metadata.yaml').read_bytes()


def _read_all(path):
    with BagReader(path) as reader:
        frames = BagFrames(reader, resolve_image_topic(reader, 'auto'),
                           resolve_label_topic(reader, 'auto'))
        return list(frames)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_bags_fail_cleanly(tmp_path_factory, bag_bytes, data):
    name, blob, metadata = bag_bytes
    target_meta = data.draw(st.booleans(), label='mutate metadata.yaml')
    source = bytearray(metadata if target_meta else blob)
    cut = data.draw(st.integers(0, len(source)), label='cut')
    for index in data.draw(st.lists(st.integers(0, len(source) - 1), max_size=6),
                           label='flips'):
        source[index] ^= data.draw(st.integers(1, 255), label='xor')
    path = tmp_path_factory.mktemp('fuzzed')
    (path / name).write_bytes(blob if target_meta else bytes(source[:cut]))
    (path / 'metadata.yaml').write_bytes(bytes(source[:cut]) if target_meta else metadata)
    try:
        frames = _read_all(path)
    except CLEAN_ERRORS as exc:
        assert str(path) in str(exc) or isinstance(exc, (MessageError, ConversionError))
        return
    assert all(f.image.ndim == 3 for f in frames)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image_blob=st.binary(max_size=600), label_blob=st.binary(max_size=600),
       valid_image=st.booleans())
def test_hostile_dataset_files_fail_with_dataset_errors(tmp_path_factory, image_blob, label_blob,
                                                        valid_image):
    import cv2

    from bisenet_ros.training.datasets import camvid, DatasetError
    root = tmp_path_factory.mktemp('camvid')
    (root / 'val').mkdir()
    (root / 'valannot').mkdir()
    if valid_image:
        cv2.imwrite(str(root / 'val' / 'a.png'), np.zeros((4, 6, 3), np.uint8))
    else:
        (root / 'val' / 'a.png').write_bytes(image_blob)
    (root / 'valannot' / 'a.png').write_bytes(label_blob)
    try:
        dataset = camvid(root, 'val')
        image, label = dataset.load(0)
    except DatasetError as exc:
        # names the file it could not read (the image or its label)
        assert str(root / 'val' / 'a.png') in str(exc) or str(root / 'valannot' / 'a.png') \
            in str(exc), str(exc)
        return
    assert image.shape[:2] == label.shape
