"""The ZeroMQ node's memory of received message ids: bounded in time and in count."""

from __future__ import annotations

from rpcframe.drivers.zmq.seen import SeenIds


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_within_the_window_gets_the_first_answer():
    seen = SeenIds(window=10.0, limit=100, clock=_Clock())
    seen.add("a", "ok")
    assert seen.get("a") == "ok"


def test_an_unknown_id_has_no_answer():
    seen = SeenIds(window=10.0, limit=100, clock=_Clock())
    assert seen.get("b") is None


def test_the_count_stays_under_the_limit_however_many_ids_come():
    seen = SeenIds(window=10.0, limit=100, clock=_Clock())
    for n in range(100_000):
        seen.add(f"{n:032x}", "ok")
    assert len(seen) <= 100


def test_the_latest_half_of_the_limit_is_always_remembered():
    seen = SeenIds(window=10.0, limit=100, clock=_Clock())
    for n in range(1000):
        seen.add(str(n), "ok")
    assert all(seen.get(str(n)) == "ok" for n in range(950, 1000))


def _after(seconds: float) -> SeenIds:
    """A memory that took id "first" (answered "noroute"), then "second" ``seconds`` later."""
    clock = _Clock()
    seen = SeenIds(window=10.0, limit=100, clock=clock)
    seen.add("first", "noroute")
    clock.now += seconds
    seen.add("second", "ok")
    return seen


def test_ids_older_than_two_windows_are_forgotten():
    seen = _after(25.0)
    assert (seen.get("first"), len(seen)) == (None, 1)


def test_an_id_from_the_previous_window_is_still_remembered():
    assert _after(12.0).get("first") == "noroute"
