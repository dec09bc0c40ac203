"""Fixtures for tests of the ``rpcframe`` command (:mod:`tests.commands` has the helpers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.commands import Command, SilentPort


@pytest.fixture
def command() -> Iterator[type[Command]]:
    """Start ``Command(*argv)``s; any still running at teardown is killed."""
    started: list[Command] = []

    class Started(Command):
        def __init__(self, *argv: str) -> None:
            super().__init__(*argv)
            started.append(self)

    yield Started
    for each in started:
        each.close()


@pytest.fixture
def silent_port() -> Iterator[SilentPort]:
    port = SilentPort()
    with contextlib.closing(port):
        yield port
