"""The asyncio bench keeps its calls in flight: a call starts as another ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from rpcframe.bench import aio


def counting_call() -> tuple[list[int], Callable[[], Awaitable[None]]]:
    """A call that notes how many calls were in flight as it started."""
    going: list[int] = []
    now = 0

    async def call() -> None:
        nonlocal now
        now += 1
        going.append(now)
        await asyncio.sleep(0)
        now -= 1

    return going, call


def test_the_in_flight_rate_keeps_that_many_calls_going_until_the_last_ones():
    in_flight, count = 10, 95
    going, call = counting_call()

    rate = asyncio.run(aio._rate_in_flight(count, in_flight, call))

    assert rate > 0
    assert len(going) == count
    assert max(going) == in_flight
    # Past the first wave, every call starts beside in_flight - 1 others,
    # until fewer calls than in_flight are left to make.
    assert all(n == in_flight for n in going[in_flight : count - in_flight])


def test_fewer_calls_than_the_window_are_all_in_flight_at_once():
    going, call = counting_call()
    asyncio.run(aio._rate_in_flight(3, 1000, call))
    assert going == [1, 2, 3]
