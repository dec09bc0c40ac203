"""Timers: callbacks run when due, in order, on one thread."""

from __future__ import annotations

import logging
import threading

import pytest

from rpcframe.timers import Timers
from tests.conftest import run_python


def test_callbacks_run_in_due_order():
    timers = Timers("unit-timers")
    ran = []
    done = threading.Event()
    try:
        timers.schedule(0.06, lambda: (ran.append("late"), done.set()))
        timers.schedule(0.0, lambda: ran.append("soon"))
        timers.schedule(0.03, lambda: ran.append("middle"))
        assert done.wait(5)
    finally:
        timers.close()
    assert ran == ["soon", "middle", "late"]


def test_a_cancelled_timer_does_not_run():
    timers = Timers("unit-timers")
    ran = []
    done = threading.Event()
    try:
        timers.schedule(0.01, lambda: ran.append("cancelled")).cancel()
        timers.schedule(0.02, done.set)
        assert done.wait(5)
    finally:
        timers.close()
    assert ran == []


def test_a_failing_callback_is_logged_and_later_ones_still_run(caplog):
    timers = Timers("unit-timers")
    done = threading.Event()
    try:
        with caplog.at_level(logging.ERROR, logger="rpcframe"):
            timers.schedule(0.0, lambda: 1 / 0)
            timers.schedule(0.01, done.set)
            assert done.wait(5)
    finally:
        timers.close()
    assert "timer callback failed" in caplog.text


def test_nothing_is_scheduled_after_close_until_reopened():
    timers = Timers("unit-timers")
    timers.close()
    assert timers.schedule(0.0, lambda: None).cancelled
    timers.reopen()
    done = threading.Event()
    try:
        assert not timers.schedule(0.0, done.set).cancelled
        assert done.wait(5)
    finally:
        timers.close()


def test_callbacks_run_on_the_named_thread():
    timers = Timers("unit-timers")
    names = []
    done = threading.Event()
    try:
        timers.schedule(0.0, lambda: (names.append(threading.current_thread().name), done.set()))
        assert done.wait(5)
    finally:
        timers.close()
    assert names == ["unit-timers"]


def test_native_timers_run_while_an_endpoint_blocks_the_eventlet_hub():
    pytest.importorskip("eventlet")
    code = (
        "import eventlet; eventlet.monkey_patch()\n"
        "import eventlet.patcher\n"
        "from rpcframe.timers import Timers\n"
        "blocking = eventlet.patcher.original('time')\n"
        "native, green, ran = Timers('n', native=True), Timers('g'), []\n"
        "native.schedule(0.01, lambda: ran.append('native'))\n"
        "green.schedule(0.01, lambda: ran.append('green'))\n"
        "blocking.sleep(0.5)  # the hub is held: no green thread runs\n"
        "print(ran)\n"
        "native.close(); green.close()\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "['native']", done.stderr


def test_cancelled_timers_do_not_pile_up_in_the_heap():
    # Calls with a long call-monitor timeout that end at once: each leaves a
    # heartbeat timer due far in the future, cancelled.
    timers = Timers("unit-timers")
    try:
        live = timers.schedule(30, lambda: None)  # due first: the heap head stays live
        for _ in range(50_000):
            timers.schedule(60, lambda: None).cancel()
        assert timers.queued < 200
        assert not live.cancelled
    finally:
        timers.close()


def test_io_jobs_run_on_their_own_thread_in_due_order():
    timers = Timers("unit-timers")
    ran = []
    done = threading.Event()
    try:
        timers.schedule_io(0.04, lambda: (ran.append("late"), done.set()))
        timers.schedule_io(0.0, lambda: ran.append(threading.current_thread().name))
        assert done.wait(5)
    finally:
        timers.close()
    assert ran == ["unit-timers-io", "late"]


def test_a_cancelled_io_job_does_not_run():
    timers = Timers("unit-timers")
    ran = []
    done = threading.Event()
    try:
        timers.schedule_io(0.01, lambda: ran.append("cancelled")).cancel()
        timers.schedule_io(0.02, done.set)
        assert done.wait(5)
    finally:
        timers.close()
    assert ran == []


def test_close_joins_both_threads():
    timers = Timers("unit-timers-joined")
    ran = threading.Event()
    timers.schedule_io(0.0, ran.set)
    assert ran.wait(5)
    timers.close()
    names = {thread.name for thread in threading.enumerate()}
    assert not names & {"unit-timers-joined", "unit-timers-joined-io"}
