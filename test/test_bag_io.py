"""Bags: write and read back in both storages, other metadata versions and ROS 1, clear errors."""

import shutil

import numpy as np
import pytest
import yaml

from bisenet_ros.bags import messages
from bisenet_ros.bags.make import BagTopics, write_frames_bag
from bisenet_ros.bags.reader import BagError, BagReader
from bisenet_ros.bags.writer import BagExistsError
from bisenet_ros.cli import main as cli_main
from bisenet_ros.evaluation.bag_frames import BagFrames, resolve_image_topic, \
    resolve_label_topic

START_NS = 1_700_000_000 * 10**9


def _frames(count=3, shape=(6, 10), seed=0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for _ in range(count)]
    labels = [rng.integers(0, 11, shape, dtype=np.uint8) for _ in range(count)]
    labels[0][0, :3] = 255  # unlabelled pixels survive the trip
    return images, labels


def _write(path, storage='mcap', compressed=False, encoding='bgr8', rate=4.0, count=3):
    images, labels = _frames(count)
    topics = BagTopics(compressed='/camera/image_raw/compressed' if compressed else None)
    summary = write_frames_bag(lambda i: (images[i], labels[i]), range(count), path,
                               storage=storage, rate_hz=rate, frame_id='cam_optical',
                               topics=topics, encoding=encoding, start_ns=START_NS)
    return summary, images, labels


def _read(path, image_topic='/camera/image_raw', label_topic='auto'):
    with BagReader(path) as reader:
        frames = BagFrames(reader, resolve_image_topic(reader, image_topic),
                           resolve_label_topic(reader, label_topic))
        return list(frames), frames.counts, dict(reader.topics)


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('encoding', ['bgr8', 'rgb8'])
def test_round_trip(tmp_path, storage, encoding):
    summary, images, labels = _write(tmp_path / 'bag', storage, encoding=encoding)
    stored = next((tmp_path / 'bag').glob('*.mcap' if storage == 'mcap' else '*.db3'))
    assert stored.stat().st_size > 0
    frames, counts, topics = _read(tmp_path / 'bag')
    assert summary.frames == 3 and topics['/camera/labels'].count == 3
    assert topics['/camera/image_raw'].msgtype == 'sensor_msgs/msg/Image'
    assert [f.stamp_ns for f in frames] == [START_NS + i * 250_000_000 for i in range(3)]
    for frame, rgb, gt in zip(frames, images, labels):
        np.testing.assert_array_equal(frame.image, rgb[:, :, ::-1])  # always BGR out
        np.testing.assert_array_equal(frame.ground_truth, gt)
        assert frame.frame_id == 'cam_optical'
    assert counts.matched == 3 and counts.images_without_partner == 0


def test_compressed_topic_and_fallback(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:] = (200, 100, 30)  # distinct channels: a swapped channel order would show
    write_frames_bag(lambda i: (rgb, None), [0, 1], tmp_path / 'bag', start_ns=START_NS,
                     topics=BagTopics(labels=None, compressed='/camera/image_raw/compressed'))
    frames, _, topics = _read(tmp_path / 'bag', '/camera/image_raw/compressed')
    assert topics['/camera/image_raw/compressed'].msgtype == messages.COMPRESSED_TYPE
    assert len(frames) == 2 and frames[0].ground_truth is None
    assert np.abs(frames[0].image.astype(int) - rgb[:, :, ::-1]).max() <= 3  # JPEG, BGR out
    # A bag with only the compressed topic is found from the default raw topic name.
    with BagReader(tmp_path / 'bag') as reader:
        del reader.topics['/camera/image_raw']
        assert resolve_image_topic(reader) == '/camera/image_raw/compressed'


def test_jazzy_metadata_version(tmp_path):
    images, labels = _frames(2)
    write_frames_bag(lambda i: (images[i], labels[i]), range(2), tmp_path / 'bag',
                     storage='sqlite3', start_ns=START_NS, distro='jazzy')
    meta = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    assert meta['rosbag2_bagfile_information']['version'] == 8
    frames, counts, _ = _read(tmp_path / 'bag')
    assert counts.matched == 2
    np.testing.assert_array_equal(frames[1].ground_truth, labels[1])


def test_humble_metadata_version(tmp_path):
    """A Humble-era metadata.yaml (version 5, QoS as a YAML string, no type hashes) reads."""
    _write(tmp_path / 'bag', 'sqlite3')
    meta_path = tmp_path / 'bag' / 'metadata.yaml'
    meta = yaml.safe_load(meta_path.read_text())
    info = meta['rosbag2_bagfile_information']
    info['version'] = 5
    for key in ('custom_data', 'ros_distro'):
        info.pop(key, None)
    for topic in info['topics_with_message_count']:
        topic['topic_metadata'].pop('type_description_hash', None)
        topic['topic_metadata']['offered_qos_profiles'] = ''
    meta_path.write_text(yaml.safe_dump(meta))
    frames, counts, _ = _read(tmp_path / 'bag')
    assert len(frames) == 3 and counts.matched == 3


def test_ros1_bag(tmp_path):
    """ROS 1 bags are read through rosbags' AnyReader."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS1_NOETIC)
    images, labels = _frames(2)
    path = tmp_path / 'old.bag'
    with Writer(path) as writer:
        conns = {t: writer.add_connection(t, 'sensor_msgs/msg/Image', typestore=store)
                 for t in ('/camera/image_raw', '/camera/labels')}
        for i, (rgb, gt) in enumerate(zip(images, labels)):
            stamp = START_NS + i * 10**8
            for topic, array, enc in (('/camera/image_raw', rgb, 'rgb8'),
                                      ('/camera/labels', gt, 'mono8')):
                msg = messages.deserialize(messages.image_cdr(array, stamp, 'cam', enc),
                                           messages.IMAGE_TYPE)
                ros1 = store.types['sensor_msgs/msg/Image'](
                    header=store.types['std_msgs/msg/Header'](
                        seq=i, stamp=store.types['builtin_interfaces/msg/Time'](
                            sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec),
                        frame_id='cam'),
                    height=msg.height, width=msg.width, encoding=enc, is_bigendian=0,
                    step=msg.step, data=msg.data)
                writer.write(conns[topic], stamp,
                             store.serialize_ros1(ros1, 'sensor_msgs/msg/Image'))
    frames, counts, _ = _read(path)
    assert counts.matched == 2
    np.testing.assert_array_equal(frames[1].image, images[1][:, :, ::-1])
    np.testing.assert_array_equal(frames[1].ground_truth, labels[1])


def test_missing_topic_lists_topics(tmp_path):
    _write(tmp_path / 'bag')
    with BagReader(tmp_path / 'bag') as reader:
        with pytest.raises(BagError) as err:
            resolve_image_topic(reader, '/front/image')
        with pytest.raises(BagError, match='/camera/labels'):
            resolve_label_topic(reader, '/front/labels')
    text = str(err.value)
    assert "no topic '/front/image'" in text
    assert '/camera/image_raw (sensor_msgs/msg/Image, 3 msgs)' in text
    assert '/camera/labels (sensor_msgs/msg/Image, 3 msgs)' in text


@pytest.mark.parametrize('storage,suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
@pytest.mark.parametrize('damage', ['truncate', 'garbage'])
def test_corrupt_bag_clear_error(tmp_path, storage, suffix, damage):
    _write(tmp_path / 'bag', storage)
    data_file = next((tmp_path / 'bag').glob('*' + suffix))
    data = data_file.read_bytes()
    data_file.write_bytes(data[:len(data) * 2 // 3] if damage == 'truncate' else b'x' * 999)
    with pytest.raises(BagError) as err:
        frames, _, _ = _read(tmp_path / 'bag')
    text = str(err.value)
    assert str(tmp_path / 'bag') in text
    assert '/camera/image_raw (sensor_msgs/msg/Image, 3 msgs)' in text  # from metadata.yaml


def test_missing_and_bad_paths(tmp_path):
    with pytest.raises(BagError, match='does not exist'):
        BagReader(tmp_path / 'nope')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='none found'):
        BagReader(tmp_path / 'empty')


def test_writer_refuses_to_overwrite(tmp_path):
    _write(tmp_path / 'bag')
    with pytest.raises(BagExistsError, match='--force'):
        _write(tmp_path / 'bag')
    (tmp_path / 'notabag').mkdir()
    (tmp_path / 'notabag' / 'important.txt').write_text('keep me')
    with pytest.raises(BagExistsError, match='not a bag'):
        write_frames_bag(lambda i: _frames(1), [0], tmp_path / 'notabag', start_ns=0)
    assert (tmp_path / 'notabag' / 'important.txt').is_file()


def test_make_bag_cli_folder_dataset(tmp_path, capsys):
    """`bisenet make-bag` from a generic image/label folder, sqlite3, compressed, a sub-range."""
    import cv2
    images, labels = _frames(5, shape=(8, 12))
    (tmp_path / 'img').mkdir()
    (tmp_path / 'lab').mkdir()
    for i, (rgb, gt) in enumerate(zip(images, labels)):
        cv2.imwrite(str(tmp_path / 'img' / f'f{i}.png'), rgb[:, :, ::-1])
        cv2.imwrite(str(tmp_path / 'lab' / f'f{i}.png'), np.where(gt == 255, 11, gt))
    code = cli_main(['make-bag', str(tmp_path / 'out'), '--dataset', 'folder', '--images',
                     str(tmp_path / 'img'), '--labels', str(tmp_path / 'lab'), '--label-set',
                     'camvid', '--storage', 'sqlite3', '--compressed', '--start', '1',
                     '--stride', '2', '--rate', '2', '--start-time', '100', '--frame-id', 'x'])
    assert code == 0
    assert 'wrote 2 frames' in capsys.readouterr().out
    frames, counts, topics = _read(tmp_path / 'out')
    assert set(topics) == {'/camera/image_raw', '/camera/image_raw/compressed', '/camera/labels'}
    assert [f.stamp_ns for f in frames] == [100 * 10**9, 100 * 10**9 + 5 * 10**8]
    np.testing.assert_array_equal(frames[1].image, images[3][:, :, ::-1])
    np.testing.assert_array_equal(frames[0].ground_truth, np.where(labels[1] == 11, 255,
                                                                   labels[1]))
    # CamVid void (11) becomes 255 in the bag: one unlabelled value whatever the dataset.
    np.testing.assert_array_equal(frames[1].ground_truth, np.where(labels[3] == 11, 255,
                                                                   labels[3]))
    assert cli_main(['make-bag', str(tmp_path / 'out'), '--dataset', 'demo', '--limit', '1']) == 1


def test_demo_dataset_bag(tmp_path):
    """The packaged demo frames make a bag with real 480x360 frames and CamVid labels."""
    assert cli_main(['make-bag', str(tmp_path / 'demo'), '--dataset', 'demo', '--limit', '2',
                     '--force']) == 0
    frames, counts, _ = _read(tmp_path / 'demo')
    assert counts.matched == 2 and frames[0].image.shape == (360, 480, 3)
    assert set(np.unique(frames[0].ground_truth)) <= set(range(11)) | {255}
    shutil.rmtree(tmp_path / 'demo')
