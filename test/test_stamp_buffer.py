"""StampBuffer: nearest stamp within a tolerance, bounded wait, capacity."""

import threading

from bisenet_ros.ros.stamp_buffer import StampBuffer


def test_nearest_within_tolerance():
    buf = StampBuffer(capacity=3)
    for stamp in (100, 200, 300):
        buf.put(stamp, f'd{stamp}')
    assert buf.wait_for(210, tolerance_ns=20, timeout=0.0) == 'd200'
    assert buf.wait_for(250, tolerance_ns=60, timeout=0.0) in ('d200', 'd300')
    assert buf.wait_for(260, tolerance_ns=60, timeout=0.0) == 'd300'
    assert buf.wait_for(150, tolerance_ns=10, timeout=0.0) is None


def test_capacity_drops_the_oldest_and_clear_empties():
    buf = StampBuffer(capacity=2)
    for stamp in (1, 2, 3):
        buf.put(stamp, stamp)
    assert buf.wait_for(1, 0, 0.0) is None and buf.wait_for(3, 0, 0.0) == 3
    buf.clear()
    assert buf.wait_for(3, 0, 0.0) is None


def test_waits_for_an_item_put_by_another_thread():
    buf = StampBuffer()
    started = threading.Event()

    def late_put():
        started.wait()
        buf.put(42, 'late')
    thread = threading.Thread(target=late_put)
    thread.start()
    started.set()
    assert buf.wait_for(42, 0, timeout=30.0) == 'late'
    thread.join()
