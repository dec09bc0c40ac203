"""Run the oslo.messaging interop peer (``oslo_peer.py``) in its own process."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import stop_child

ROOT = Path(__file__).resolve().parents[2]


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.functional.oslo_peer", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The next line the peer prints, or AssertionError after ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"the oslo.messaging peer said nothing in {timeout} s")
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"the oslo.messaging peer exited: {stderr[-2000:]}")
            if line.strip():
                return line.strip()


@contextlib.contextmanager
def oslo_process(
    *args: str, config_file: str | None = None, new_session: bool = False
) -> Iterator[subprocess.Popen[str]]:
    """A long-running peer command; its standard input closes when the block ends.

    The peer stays in this process group, as a worker of the same service
    would, unless ``new_session``: then it is a service of its own.
    """
    proc = subprocess.Popen(
        _command(*_config(config_file), *args),
        start_new_session=new_session,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        yield proc
    finally:
        stop_child(proc)


@contextlib.contextmanager
def oslo_server(
    url: str, exchange: str, topic: str, name: str, config_file: str | None = None
) -> Iterator[None]:
    """An oslo.messaging RPC server, running until the block ends."""
    with oslo_process("server", url, exchange, topic, name, config_file=config_file) as proc:
        assert read_line(proc, 60) == "ready"
        yield


def tell(proc: subprocess.Popen[str], line: str, timeout: float = 30.0) -> str:
    """Write one line to an interactive peer and return its answer."""
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return read_line(proc, timeout)


def _config(config_file: str | None) -> list[str]:
    return ["--config-file", config_file] if config_file else []


def run_oslo(*args: str, timeout: float = 120.0, config_file: str | None = None) -> Any:
    """Run a one-shot peer command and return the JSON it printed last."""
    done = subprocess.run(
        _command(*_config(config_file), *args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stderr[-3000:]
    try:
        return json.loads(lines[-1])
    except ValueError:
        return lines[-1]
