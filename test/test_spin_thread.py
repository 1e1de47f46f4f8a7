"""SpinThread: a node in its own context and executor thread; the first exception raised by a
callback stops the spinning and reaches the waiter (not a timeout). Real rclpy, real DDS."""

import os

import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from bisenet_ros.ros.clients.spin_thread import SpinThread

DOMAIN = 110 + os.getpid() % 10
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Long enough that a waiter which only times out makes the test fail, not pass slowly.
TIMEOUT_S = 60.0


class CallbackBug(Exception):
    pass


def test_timer_callback_error_reaches_the_waiter_and_stops_spinning():
    spin = SpinThread('spin_thread_timer', DOMAIN)
    calls = []

    def tick():
        calls.append(1)
        raise CallbackBug(f'tick {len(calls)}')

    try:
        spin.node.create_timer(0.01, tick)
        with pytest.raises(CallbackBug, match='tick 1') as raised:
            spin.wait_for(lambda: False, TIMEOUT_S)
        assert any(entry.name == 'tick' for entry in raised.traceback)  # the callback's frame
        with pytest.raises(CallbackBug) as again:
            spin.check()
        assert again.value is raised.value
    finally:
        spin.close()
    assert not spin.spinning
    assert calls == [1]  # stopped at the first exception


def test_subscription_error_over_dds_reaches_the_waiter():
    """A message callback that raises: the test waiting for its result gets the exception."""
    with SpinThread('spin_thread_talker', DOMAIN) as talker, \
            SpinThread('spin_thread_listener', DOMAIN) as listener:
        received = []

        def on_message(msg):
            received.append(msg.data)
            raise CallbackBug(f'cannot handle {msg.data!r}')

        listener.node.create_subscription(String, '/spin_thread_test', on_message, RELIABLE)
        publisher = talker.node.create_publisher(String, '/spin_thread_test', RELIABLE)
        assert talker.wait_for(lambda: publisher.get_subscription_count() > 0, TIMEOUT_S)
        publisher.publish(String(data='frame 1'))
        with pytest.raises(CallbackBug, match="cannot handle 'frame 1'"):
            listener.wait_for(lambda: len(received) >= 2, TIMEOUT_S)
        talker.check()  # the other endpoint is unaffected
        assert talker.spinning and not listener.spinning


def test_waiter_wakes_on_messages_and_times_out_without_error():
    with SpinThread('spin_thread_a', DOMAIN) as a, SpinThread('spin_thread_b', DOMAIN) as b:
        received = []

        def on_message(msg):
            with b.lock:
                received.append(msg.data)

        b.node.create_subscription(String, '/spin_thread_ok', on_message, RELIABLE)
        publisher = a.node.create_publisher(String, '/spin_thread_ok', RELIABLE)
        assert a.wait_for(lambda: publisher.get_subscription_count() > 0, TIMEOUT_S)
        for i in range(3):
            publisher.publish(String(data=str(i)))
        assert b.wait_for(lambda: len(received) == 3, TIMEOUT_S)
        assert received == ['0', '1', '2']
        assert b.wait_for(lambda: len(received) > 3, 0.05) is False  # nothing more came
        b.check()
    a.close()  # closing twice is harmless
    assert not a.spinning and not b.spinning
