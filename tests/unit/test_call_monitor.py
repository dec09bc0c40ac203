"""Call-monitor heartbeats of a running call: when they stop, and which thread sends them."""

from __future__ import annotations

from rpcframe.rpc.server import _Heartbeat
from rpcframe.timers import Timer


class RecordingTimers:
    """Timers that only record what is scheduled; ``on_schedule`` runs inside schedule()."""

    def __init__(self) -> None:
        self.scheduled: list[Timer] = []
        self.on_schedule = lambda: None

    def schedule(self, delay: float, callback) -> Timer:
        timer = Timer(callback)
        self.scheduled.append(timer)
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


def test_a_cancel_while_the_next_beat_is_being_scheduled_still_stops_it():
    # The call ends on its worker while the timer thread schedules the next
    # beat: that beat must not run, nor any after it.
    timers = RecordingTimers()
    heartbeat = _Heartbeat(timers, 1.0, send=lambda: True)
    timers.on_schedule = heartbeat.cancel
    heartbeat._beat()
    assert all(timer.cancelled for timer in timers.scheduled)
