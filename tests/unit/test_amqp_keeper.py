"""The keeper thread outlives any one failure of the link it keeps."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from rpcframe.drivers.amqp.keeper import Keeper

pytestmark = pytest.mark.timeout(30)


class FailingOnce:
    """A link whose first beat fails unexpectedly; later beats are counted."""

    name = "unit-link"
    connected = True
    keep_connected = True
    settings = SimpleNamespace(heartbeat=60, heartbeat_rate=2)

    def __init__(self) -> None:
        self.beats = 0
        self.beaten_again = threading.Event()
        self.keeper: Keeper | None = None

    def beat(self) -> None:
        self.beats += 1
        assert self.keeper is not None
        self.keeper.nudge()  # the next beat at once, not a tick later
        if self.beats == 1:
            raise RuntimeError("a bug somewhere below")
        self.beaten_again.set()


def test_an_unexpected_error_is_logged_and_the_keeper_carries_on(caplog):
    link = FailingOnce()
    stop = threading.Event()
    keeper = Keeper(link, stop)  # type: ignore[arg-type]
    link.keeper = keeper
    keeper.start()
    try:
        keeper.nudge()
        assert link.beaten_again.wait(10), "the keeper stopped after the first failure"
    finally:
        stop.set()
        keeper.stop(5)
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failures and "unexpected error" in failures[0].getMessage()
