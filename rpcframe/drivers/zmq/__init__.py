"""The ZeroMQ driver (``zmq://``, ``zmq+redis://``); needs ``pip install 'rpcframe[zmq]'``.

Modules: :mod:`.driver` (the Driver: addresses to processes), :mod:`.node`
(the process's listening socket and the I/O loop owning every socket),
:mod:`.peers` (its connections to other processes and the messages on their
way), :mod:`.listener` (listeners, inboxes and their mailboxes),
:mod:`.matchmaker` (the name service: Redis or static), :mod:`.routing`
(record and inbox names), :mod:`.frames` (the driver's own framing and
acknowledgements), :mod:`.seen` (the ids received lately, to drop copies),
:mod:`.security` (CURVE), :mod:`.store` (notifications kept in Redis
streams, when asked), :mod:`.aio` (the asyncio driver: the node run by an
event loop), :mod:`.options` (its
``[oslo_messaging_zmq]`` and ``[matchmaker_redis]`` options) and
:mod:`.errors` (the one table from backend exceptions to rpcframe's).

Importing this package imports neither pyzmq nor redis-py: the options can be
listed on a machine without them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ZmqDriver"]


def __getattr__(name: str) -> Any:
    if name == "ZmqDriver":
        from rpcframe.drivers.zmq.driver import ZmqDriver

        return ZmqDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
