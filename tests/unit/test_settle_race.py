"""Settling a message is atomic: from many threads at once, exactly one settlement wins."""

from __future__ import annotations

import threading

from rpcframe import exceptions
from rpcframe.drivers import base


class _WidenedRace(base.IncomingMessage):
    """A message whose "already settled?" check waits for a second thread to check too.

    Without a lock around check-and-set, both threads then see "not settled"
    and both settle; with one, the second cannot check until the first has
    set its state, so the first gives up waiting after ``window`` seconds.
    """

    __slots__ = ("_state", "_checked", "settlements", "window")

    def __init__(self, window: float) -> None:
        self._state: str | None = None
        self._checked = threading.Barrier(2)
        self.window = window
        self.settlements: list[str] = []
        super().__init__(b"")

    @property  # type: ignore[override]
    def _settled(self) -> str | None:
        state = self._state
        try:
            self._checked.wait(self.window)  # for the other thread's check, if it can come
        except threading.BrokenBarrierError:
            pass
        return state

    @_settled.setter
    def _settled(self, state: str | None) -> None:
        self._state = state

    def _ack(self) -> None:
        self.settlements.append("ack")

    def _requeue(self) -> None:
        self.settlements.append("requeue")


def test_two_threads_settling_one_message_settle_it_once():
    message = _WidenedRace(window=0.2)
    refused: list[Exception] = []

    def settle(how):
        try:
            how()
        except exceptions.MessageStateError as exc:
            refused.append(exc)

    threads = [
        threading.Thread(target=settle, args=(message.ack,)),
        threading.Thread(target=settle, args=(message.requeue,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(message.settlements) == 1
    assert len(refused) == 1
