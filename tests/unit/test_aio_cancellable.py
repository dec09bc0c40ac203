"""A coroutine endpoint runs in its request's task, and the caller's cancel reaches it there."""

from __future__ import annotations

import asyncio

import pytest

from rpcframe.aio import server
from rpcframe.rpc import current


def _call() -> current.Call:
    return current.Call("m1", "work", None, None)


def test_a_cancel_while_the_endpoint_runs_cancels_it_and_is_taken_back():
    async def main():
        loop = asyncio.get_running_loop()
        call = _call()
        started = asyncio.Event()

        async def endpoint() -> str:
            started.set()
            await asyncio.sleep(60)
            return "never"

        async def request() -> int:
            with pytest.raises(asyncio.CancelledError):
                await server._cancellable(loop, call, endpoint())
            # The request's task goes on, with no cancel left pending.
            await asyncio.sleep(0)
            task = asyncio.current_task()
            assert task is not None
            return task.cancelling()

        handling = asyncio.ensure_future(request())
        await started.wait()
        call._cancel("the caller cancelled it")
        return await asyncio.wait_for(handling, 5)

    assert asyncio.run(main()) == 0


def test_a_cancel_after_the_endpoint_returned_does_not_touch_the_request():
    async def main():
        loop = asyncio.get_running_loop()
        call = _call()

        async def endpoint() -> str:
            return "done"

        async def request() -> str:
            result = await server._cancellable(loop, call, endpoint())
            call._cancel("too late")
            for _ in range(3):
                await asyncio.sleep(0)  # where a stray cancel would land
            return result

        return await asyncio.wait_for(request(), 5)

    assert asyncio.run(main()) == "done"
