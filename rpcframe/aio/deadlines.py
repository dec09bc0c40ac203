"""The deadline of the ``asyncio.timeout()`` around a call, so that the request carries it.

``async with asyncio.timeout(2): await client.call(...)`` ends the wait
after two seconds whatever the client's own timeout, and cancelling the
task cancels the call on the server. A server that knows the call's
deadline does better still: it does not run a request that reaches it too
late, and the endpoint sees the deadline (``current_call()``), which the
calls it makes in turn inherit. :func:`seconds_left` finds that deadline,
so the client can send it as the request's ``_deadline``.

asyncio keeps no record of the timeouts a task is in; each one is a timer
of the loop whose callback is its :class:`asyncio.Timeout`, bound to the
task it guards. :func:`seconds_left` looks for those among the loop's
timers: the ones due before the call's own deadline only (the loop keeps
its timers in a heap, so the rest is skipped unread), and the transport
keeps a single timer of its own for all its calls, so the search stays
short. It reads what CPython's event loop keeps (its timer heap, each
timer's callback, each Timeout's task); on a loop that keeps none of it
(uvloop) it finds nothing, and calls carry the client's own timeout, as
they do without an ``asyncio.timeout()``. Timeouts of another task (one
that awaits ``asyncio.gather`` of calls, say) are not this task's, and so
are not found: the gather's tasks still end, cancelled, at that deadline.
``asyncio.wait_for`` is an ``asyncio.timeout()`` on Python 3.12 and later.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["seconds_left"]


def seconds_left(bound: float) -> float | None:
    """Seconds to the soonest ``asyncio.timeout()`` around the running task, if before ``bound``.

    None when there is none due within ``bound`` seconds (or the loop's
    timers cannot be read).
    """
    loop = asyncio.get_running_loop()
    heap: Any = getattr(loop, "_scheduled", None)
    task = asyncio.current_task(loop)
    if task is None or not heap or not isinstance(heap, list):
        return None
    now = loop.time()
    limit = now + bound
    soonest: float | None = None
    size = len(heap)
    todo = [0]
    while todo:
        index = todo.pop()
        timer = heap[index]
        when = timer.when()
        if when >= limit:
            continue  # a heap: nothing below it is sooner
        if not timer.cancelled():
            owner = getattr(getattr(timer, "_callback", None), "__self__", None)
            if type(owner) is asyncio.Timeout and getattr(owner, "_task", None) is task:
                soonest = limit = when
        for child in (2 * index + 1, 2 * index + 2):
            if child < size:
                todo.append(child)
    return None if soonest is None else max(0.0, soonest - now)
