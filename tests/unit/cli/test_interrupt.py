"""Ctrl-C: one line, exit status 130, and what the command started is stopped."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import rpcframe
from rpcframe.cli import main

pytestmark = pytest.mark.timeout(120)


def assert_interrupted(command, name):
    status, _ = command.finish()
    assert status == 130
    assert command.err[-1] == f"rpcframe {name}: interrupted\n", command.err
    assert not any("Traceback" in line for line in command.err + command.out)


def test_ctrl_c_ends_listen_with_one_line_and_status_130(command):
    cmd = command("listen", "--url", "fake://")
    cmd.wait_for("listening")
    cmd.interrupt()
    assert_interrupted(cmd, "listen")
    assert len(cmd.err) == 2  # "listening ...", then "interrupted"


def test_ctrl_c_ends_the_demo_in_its_timed_calls(command):
    cmd = command("demo", "--calls", "1000000000")
    cmd.wait_for("call at version 2.0")
    cmd.interrupt()
    assert_interrupted(cmd, "demo")
    assert cmd.err == ["rpcframe demo: interrupted\n"]


def test_ctrl_c_ends_notify_while_it_connects(command, silent_port):
    cmd = command("notify", "--url", silent_port.url, "--event-type", "a.b", "--timeout", "60")
    silent_port.wait_for_a_connection()
    cmd.interrupt()
    assert_interrupted(cmd, "notify")
    assert cmd.err == ["rpcframe notify: interrupted\n"]


def test_ctrl_c_ends_listen_while_it_connects(command, silent_port):
    cmd = command("listen", "--url", silent_port.url, "--timeout", "60")
    silent_port.wait_for_a_connection()
    cmd.interrupt()
    assert_interrupted(cmd, "listen")
    assert cmd.err == ["rpcframe listen: interrupted\n"]


# -- in-process: what was started is stopped --------------------------------------------


class Recorder:
    """Wraps the transports and servers a command makes, and records their ends."""

    def __init__(self, monkeypatch):
        self.transports = []
        self.ended = []
        self._monkeypatch = monkeypatch

    def wrap(self, name):
        real = getattr(rpcframe, name)

        def made(*args, **kwargs):
            thing = real(*args, **kwargs)
            for method in ("stop", "wait", "cleanup"):
                if hasattr(thing, method):
                    self._record(thing, method)
            if isinstance(thing, rpcframe.Transport):
                self.transports.append(thing)
            return thing

        self._monkeypatch.setattr(rpcframe, name, made)

    def _record(self, thing, method):
        real = getattr(thing, method)

        def recorded(*args, **kwargs):
            self.ended.append(method)
            return real(*args, **kwargs)

        self._monkeypatch.setattr(thing, method, recorded)


class InterruptedAt(io.StringIO):
    """An output stream on which Ctrl-C is pressed when ``text`` is written (once)."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def write(self, s):
        if self.text is not None and self.text in s:
            self.text = None
            raise KeyboardInterrupt
        return super().write(s)


def test_ctrl_c_in_the_demo_stops_its_server_and_closes_its_transport(monkeypatch):
    recorder = Recorder(monkeypatch)
    for name in ("get_rpc_transport", "get_rpc_server"):
        recorder.wrap(name)
    status = main(["demo", "--calls", "10"], out=InterruptedAt("whoami"))
    assert status == 130
    assert recorder.ended == ["stop", "wait", "cleanup"]
    client = rpcframe.get_rpc_client(recorder.transports[0], rpcframe.Target(topic="t"))
    with pytest.raises(rpcframe.ClientSendError, match="closed"):
        client.cast({}, "greet", name="nobody")


def test_ctrl_c_in_listen_stops_its_listener_and_closes_its_transport(monkeypatch):
    recorder = Recorder(monkeypatch)
    for name in ("get_notification_transport", "get_notification_listener"):
        recorder.wrap(name)
    monkeypatch.setattr("sys.stderr", InterruptedAt("listening"))
    status = main(["listen", "--url", "fake://"])
    assert status == 130
    assert recorder.ended == ["stop", "wait", "cleanup"]


# The kernel hands a process's SIGINT to any thread that does not block it.
# Here only a helper thread can take it; the main thread then waits on an event
# that is never set, as listen does until Ctrl-C.
_SIGINT_TO_ANOTHER_THREAD = """
import os, signal, sys, threading
from rpcframe.cli import deadline

main, waiting, never = threading.get_native_id(), threading.Event(), threading.Event()

def interrupt_the_waiting_main_thread():
    waiting.wait()
    # Once the main thread sleeps in its wait (state S), Ctrl-C.
    while open(f"/proc/self/task/{main}/stat").read().rsplit(")", 1)[1].split()[0] != "S":
        pass
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_the_waiting_main_thread, daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
try:
    waiting.set()
    deadline.wait(never, None)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_a_ctrl_c_taken_by_another_thread_still_ends_a_wait():
    # A plain Event.wait() here never returns: the main thread sleeps on the
    # lock and nothing wakes it to look at the flag the helper thread set.
    done = subprocess.run(
        [sys.executable, "-c", _SIGINT_TO_ANOTHER_THREAD],
        check=False,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 130, done.stderr.decode()
