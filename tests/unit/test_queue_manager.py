"""The queue manager's names, counter file and lock, beside oslo.messaging's own.

Counter files live in a temporary directory instead of /dev/shm; oslo.messaging's
QManager is pointed at the same file and lock directory.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers.amqp import queue_manager
from rpcframe.drivers.amqp.queue_manager import QueueManager


@pytest.fixture
def manager(tmp_path):
    return QueueManager(f"host-{uuid.uuid4().hex[:8]}", "nova-api", str(tmp_path), str(tmp_path))


def _file(manager):
    with open(manager.counter_file) as counter_file:
        return counter_file.read()


def test_names_are_host_process_and_a_counter(manager):
    assert [manager.next_name() for _ in range(3)] == [
        f"{manager.hostname}:nova-api:{n}" for n in (1, 2, 3)
    ]


def test_the_counter_file_holds_oslos_line(manager, tmp_path):
    manager.next_name()
    manager.next_name()
    group, start = queue_manager.current_generation()
    assert _file(manager) == f"{group}:2:{start}"
    assert manager.counter_file == str(tmp_path / f"{manager.hostname}_nova-api_qmanager")


def test_the_lock_is_oslo_concurrencys_file_for_the_same_name(manager, tmp_path):
    manager.next_name()
    assert manager.lock_file() == str(tmp_path / f"oslo_read_shm_{manager.hostname}_nova-api")
    assert os.path.exists(manager.lock_file())


def test_a_generation_that_is_gone_starts_the_sequence_again(manager):
    group, start = queue_manager.current_generation()
    with open(manager.counter_file, "w") as counter_file:
        counter_file.write(f"{group}:41:{start + 1}")  # the same group id, recycled
    assert manager.next_name().endswith(":1")
    assert _file(manager) == f"{group}:1:{start}"


def test_a_running_generation_is_continued_not_restarted(manager):
    init_start = queue_manager._start_time(1)
    if init_start is None or os.getpgrp() == 1:
        pytest.skip("needs a process group 1 other than this one")
    with open(manager.counter_file, "w") as counter_file:
        counter_file.write(f"1:7:{init_start}")
    assert manager.next_name().endswith(":8")
    assert _file(manager) == f"1:8:{init_start}"


def test_once_this_process_drew_it_keeps_counting(manager):
    manager.next_name()
    with open(manager.counter_file, "w") as counter_file:
        counter_file.write("999999999:5:1")  # another generation took over, then ended
    assert manager.next_name().endswith(":6")


def test_a_garbled_counter_file_starts_again(manager):
    with open(manager.counter_file, "w") as counter_file:
        counter_file.write("not a counter")
    assert manager.next_name().endswith(":1")


def test_threads_never_draw_the_same_name(manager):
    names: list[str] = []
    lock = threading.Lock()

    def draw():
        for _ in range(20):
            name = manager.next_name()
            with lock:
                names.append(name)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(set(names)) == len(names) == 160


def test_without_a_lock_directory_the_error_names_the_option(tmp_path):
    manager = QueueManager("h", "p", None, str(tmp_path))
    with pytest.raises(exceptions.ConfigurationError, match="lock_path"):
        manager.next_name()


def test_oslo_and_rpcframe_draw_from_one_sequence(manager, tmp_path, monkeypatch):
    amqpdriver = pytest.importorskip("oslo_messaging._drivers.amqpdriver")
    # oslo's QManager reads /proc/<group leader>/stat and fails when the
    # leader has exited (a test run started in the background by a shell
    # that has gone): both sides see a group whose leader is this process.
    monkeypatch.setattr(os, "getpgrp", os.getpid)
    cfg.CONF.set_override("lock_path", str(tmp_path), group="oslo_concurrency")
    try:
        oslo = amqpdriver.QManager(hostname=manager.hostname, processname="nova-api")
        oslo.file_name = manager.counter_file
        names = [manager.next_name(), oslo.get(), manager.next_name(), oslo.get()]
    finally:
        cfg.CONF.clear_override("lock_path", group="oslo_concurrency")
    assert names == [f"{manager.hostname}:nova-api:{n}" for n in (1, 2, 3, 4)]


def test_a_group_whose_leader_is_gone_still_draws_names(manager, monkeypatch):
    # A service started by a job runner that exited: its group has no leader.
    gone = 2**22 + 12345  # above any pid this machine hands out
    monkeypatch.setattr(os, "getpgrp", lambda: gone)
    assert queue_manager.current_generation() == (gone, 0)
    first, second = manager.next_name(), manager.next_name()
    assert first != second and first.endswith(":1") and second.endswith(":2")
