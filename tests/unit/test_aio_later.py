"""Callbacks scheduled on one loop timer per delay: in order, once, unless cancelled."""

from __future__ import annotations

import asyncio

from rpcframe.aio import later


def test_callbacks_run_after_their_delay_in_the_order_scheduled_unless_cancelled():
    async def main():
        loop = asyncio.get_running_loop()
        scheduler = later.Later(loop)
        ran: list[tuple[str, float]] = []
        done = asyncio.Event()
        started = loop.time()

        def note(name: str) -> None:
            ran.append((name, loop.time() - started))
            if name == "last":
                done.set()

        scheduler.call_later(0.05, lambda: note("a"))
        cancelled = scheduler.call_later(0.05, lambda: note("cancelled"))
        scheduler.call_later(0.05, lambda: note("b"))
        scheduler.call_later(0.01, lambda: note("sooner"))
        scheduler.call_later(0.1, lambda: note("last"))
        cancelled.cancel()
        await asyncio.wait_for(done.wait(), 5)
        # One loop timer per delay, none left once everything ran.
        assert not scheduler._timers and not scheduler._queues
        return ran

    ran = asyncio.run(main())
    assert [name for name, _ in ran] == ["sooner", "a", "b", "last"]
    due = {"sooner": 0.01, "a": 0.05, "b": 0.05, "last": 0.1}
    assert all(at >= due[name] - 0.005 for name, at in ran), ran  # never early


def test_many_cancelled_callbacks_leave_one_timer_and_a_failing_one_stops_no_other():
    async def main():
        loop = asyncio.get_running_loop()
        scheduler = later.Later(loop)
        entries = [scheduler.call_later(0.02, lambda: None) for _ in range(1000)]
        for entry in entries:
            entry.cancel()
        assert len(scheduler._timers) == 1
        done = asyncio.Event()

        def fail() -> None:
            raise RuntimeError("boom")

        scheduler.call_later(0.02, fail)
        scheduler.call_later(0.02, done.set)
        await asyncio.wait_for(done.wait(), 5)

    asyncio.run(main())
