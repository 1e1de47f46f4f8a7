"""resources.py: the Fast DDS profile every replay process loads is the one config file."""

from xml.etree import ElementTree

from bisenet_ros.resources import FASTDDS_PROFILE, find_config_file, large_message_profile


def test_large_message_profile_is_the_config_file_unless_the_user_chose(monkeypatch, tmp_path):
    monkeypatch.delenv('FASTDDS_DEFAULT_PROFILES_FILE', raising=False)
    monkeypatch.delenv('RMW_IMPLEMENTATION', raising=False)
    path = large_message_profile()
    assert path == find_config_file(FASTDDS_PROFILE).resolve() and path.is_absolute()
    root = ElementTree.parse(path).getroot()
    assert root.find('.//{*}segment_size') is not None  # a real profile, read as XML
    monkeypatch.setenv('RMW_IMPLEMENTATION', 'rmw_cyclonedds_cpp')
    assert large_message_profile() is None  # not Fast DDS: nothing to load
    monkeypatch.delenv('RMW_IMPLEMENTATION')
    monkeypatch.setenv('FASTDDS_DEFAULT_PROFILES_FILE', str(tmp_path / 'mine.xml'))
    assert large_message_profile() is None  # the user's own profile stays
