"""Whether a process is eventlet-patched, told without importing eventlet (fresh processes)."""

from __future__ import annotations

import pytest

from tests.conftest import run_python

pytestmark = pytest.mark.timeout(60)


def run(code: str) -> list[str]:
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_process_that_never_imported_eventlet_is_threaded_and_eventlet_stays_unimported():
    # Calls with call-monitor heartbeats, and a RabbitMQ send that fails to
    # connect, pass every place that asks which kind of process this is.
    out = run(
        "import sys\n"
        "from oslo_config import cfg\n"
        "import rpcframe\n"
        "from rpcframe import green\n"
        "from rpcframe.drivers import base\n"
        "class Echo:\n"
        "    def echo(self, ctxt, value): return value\n"
        "conf = cfg.ConfigOpts(); conf([])\n"
        "t = rpcframe.get_rpc_transport(conf, 'fake://')\n"
        "s = rpcframe.get_rpc_server(t, rpcframe.Target(topic='t', server='s'), [Echo()])\n"
        "s.start()\n"
        "c = rpcframe.get_rpc_client(t, rpcframe.Target(topic='t'), call_monitor_timeout=5)\n"
        "c.call({}, 'echo', value=1); s.stop(); s.wait(); t.cleanup()\n"
        "r = rpcframe.get_rpc_transport(conf, 'rabbit://guest:guest@127.0.0.1:1/')\n"
        "try: r._driver.send(base.Address('x', 't'), b'{}', retry=1, timeout=5)\n"
        "except rpcframe.MessagingException: pass\n"
        "r.cleanup()\n"
        "print(green.patched(), 'eventlet' in sys.modules)\n"
    )
    assert out == ["False", "False"]


def test_importing_eventlet_without_patching_is_still_threaded():
    pytest.importorskip("eventlet")
    out = run(
        "import threading, eventlet\n"
        "from rpcframe import green\n"
        "print(green.patched(), green.native_threading() is threading)\n"
    )
    assert out == ["False", "True"]


def test_a_monkey_patched_process_is_green_and_native_threads_stay_native():
    pytest.importorskip("eventlet")
    out = run(
        "import eventlet; eventlet.monkey_patch()\n"
        "import threading\n"
        "from rpcframe import green\n"
        "native = green.native_threading()\n"
        "print(green.patched(), native is threading, type(threading.Lock()).__module__)\n"
        "print(type(native.Lock()).__module__)\n"
    )
    assert out == ["True", "False", "eventlet.lock", "_thread"]


def test_waiting_for_a_socket_lets_other_green_threads_run():
    pytest.importorskip("eventlet")
    out = run(
        "import eventlet; eventlet.monkey_patch()\n"
        "import socket\n"
        "from rpcframe import green\n"
        "a, b = socket.socketpair()\n"
        "eventlet.spawn(b.send, b'x')\n"
        "print(green.wait_readable([a.fileno()], 5) == [a.fileno()])\n"
        "print(green.wait_readable([b.fileno()], 0.01))\n"
    )
    assert out == ["True", "[]"]


def test_a_socket_on_descriptor_0_is_waited_on_too():
    # A daemon with its standard input closed may get a socket as descriptor 0.
    pytest.importorskip("eventlet")
    out = run(
        "import eventlet; eventlet.monkey_patch()\n"
        "import os, socket\n"
        "from rpcframe import green\n"
        "a, b = socket.socketpair()\n"
        "os.dup2(a.fileno(), 0)\n"
        "eventlet.spawn(b.send, b'x')\n"
        "print(green.wait_readable([0], 5))\n"
    )
    assert out == ["[0]"]
