"""What the ZeroMQ functional tests share: the Redis URL, server processes, Redis records."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

from tests.conftest import child_process
from tests.functional.peers import read_line

PREFIX = f"rpcframe.functional.{uuid.uuid4().hex[:8]}"
URL = (
    "zmq+redis://127.0.0.1:6379/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
    f"&key_prefix={PREFIX}&zmq_target_expire=6&zmq_target_update=2&zmq_heartbeat_timeout=2"
    "&zmq_heartbeat_interval=0.5"
)


class Cluster:
    """Server processes of one topic, by name; stopped (or killed) at the end."""

    def __init__(self, topic: str, stack: contextlib.ExitStack) -> None:
        self.topic = topic
        self._stack = stack
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tests.functional.zmq_server", URL, self.topic, name]
        proc = self._stack.enter_context(child_process(command))
        assert read_line(proc, 30) == "ready"
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> int:
        """Stop a server cleanly; how many casts it ran."""
        proc = self.procs.pop(name)
        assert proc.stdin is not None
        proc.stdin.close()
        line = read_line(proc, 30)
        proc.wait(30)
        assert line.startswith("casts "), line
        return int(line.split()[1])

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(30)


def redis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def endpoint_of(topic: str, server: str) -> str:
    key = f"{PREFIX}:" + json.dumps(["rpc", "openstack", topic, server], separators=(",", ":"))
    members = redis_cli("zrange", key, "0", "-1").stdout.split()
    assert len(members) == 1, members
    return members[0]


REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
    "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip


def start_redis() -> None:
    """Start Redis again as this machine runs it (nothing kept on disk), and wait for it."""
    if redis_cli("ping").stdout.strip() != "PONG":
        subprocess.run(REDIS_START, check=True, timeout=30)
    deadline = time.monotonic() + 30
    while redis_cli("ping").stdout.strip() != "PONG":
        assert time.monotonic() < deadline, "Redis did not start again"
