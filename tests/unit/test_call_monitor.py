"""Call-monitor heartbeats of a running call: when they stop, how often, and on which thread."""

from __future__ import annotations

import threading

import pytest

from rpcframe import wire
from rpcframe.rpc.server import MIN_HEARTBEAT_INTERVAL, _Heartbeat, heartbeat_interval
from rpcframe.timers import Timer, Timers


class RecordingTimers:
    """Timers that only record what is scheduled; ``on_schedule`` runs inside schedule_io()."""

    def __init__(self) -> None:
        self.scheduled: list[Timer] = []
        self.delays: list[float] = []
        self.on_schedule = lambda: None

    def new_lock(self):
        return threading.Lock()

    def schedule_io(self, delay: float, callback) -> Timer:
        timer = Timer(callback)
        self.scheduled.append(timer)
        self.delays.append(delay)
        self.on_schedule()
        return timer


def test_each_beat_schedules_the_next():
    timers = RecordingTimers()
    heartbeat = _Heartbeat(timers, 1.0, send=lambda: True)
    heartbeat._beat()
    heartbeat._beat()
    assert len(timers.scheduled) == 3
    assert not timers.scheduled[-1].cancelled


def test_a_failed_beat_stops_the_beating():
    timers = RecordingTimers()
    heartbeat = _Heartbeat(timers, 1.0, send=lambda: False)
    heartbeat._beat()
    assert len(timers.scheduled) == 1


def test_a_cancelled_heartbeat_sends_nothing_more():
    timers = RecordingTimers()
    sent = []
    heartbeat = _Heartbeat(timers, 1.0, send=lambda: sent.append(1) or True)
    heartbeat.cancel()
    heartbeat._beat()  # the beat that was already due when the call ended
    assert sent == []
    assert all(timer.cancelled for timer in timers.scheduled)


def test_a_first_beat_due_at_once_is_not_lost_to_the_constructor():
    # The timer fires (on another thread) before the constructor has stored
    # the Timer it scheduled: the beat it schedules must be the one a cancel
    # stops, not the one the constructor would overwrite it with.
    timers = RecordingTimers()
    holder: list[_Heartbeat] = []
    beat_done = threading.Event()

    def fire_first_beat_from_another_thread():
        timers.on_schedule = lambda: None
        thread = threading.Thread(target=lambda: (holder[0]._beat(), beat_done.set()))
        thread.start()
        # The constructor holds its lock while scheduling: the beat waits for it.
        assert not beat_done.wait(0.1)

    timers.on_schedule = fire_first_beat_from_another_thread
    heartbeat = _Heartbeat.__new__(_Heartbeat)
    holder.append(heartbeat)
    heartbeat.__init__(timers, 1.0, send=lambda: True)
    assert beat_done.wait(5)
    heartbeat.cancel()
    _first, second = timers.scheduled  # the first has fired; the second is the live one
    assert second.cancelled


@pytest.mark.parametrize(
    ("monitor_timeout", "interval"),
    [(10, 5.0), (2, 1.0), (1, MIN_HEARTBEAT_INTERVAL), (0.001, MIN_HEARTBEAT_INTERVAL),
     (-5, MIN_HEARTBEAT_INTERVAL), (None, MIN_HEARTBEAT_INTERVAL)],
)  # fmt: skip
def test_the_heartbeat_interval_is_half_the_callers_timeout_but_at_least_oslos_floor(
    monitor_timeout, interval
):
    assert heartbeat_interval(monitor_timeout) == interval
    assert MIN_HEARTBEAT_INTERVAL == 1.0


def test_a_request_asking_for_a_tiny_timeout_gets_beats_at_the_floor(transport):
    timers = RecordingTimers()
    body = wire.encode_request("m", {}, {}, msg_id="m-1", reply_q="reply_x", monitor_timeout=0.001)
    _Heartbeat.start(transport, timers, timers, wire.parse_request(body))
    assert timers.delays == [MIN_HEARTBEAT_INTERVAL]


def test_a_beat_whose_send_blocks_does_not_hold_up_the_timer_thread():
    timers = Timers("unit-timers")
    release = threading.Event()
    other_timer_ran = threading.Event()
    try:
        sending = threading.Event()

        def blocking_send() -> bool:
            sending.set()
            release.wait(10)
            return False

        _Heartbeat(timers, 0.0, send=blocking_send)
        assert sending.wait(5)
        timers.schedule(0.0, other_timer_ran.set)
        assert other_timer_ran.wait(5), "the timer thread waited on a heartbeat's send"
    finally:
        release.set()
        timers.close()
