"""AsyncRPCClient: the RPC client for asyncio code.

The same targets, settings, ``prepare()``, version caps and errors as
:class:`rpcframe.RPCClient` (they share their base); its sending methods are
coroutines::

    transport = rpcframe.aio.get_rpc_transport(conf)
    client = rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic="compute"))
    host = await client.prepare(timeout=10).call(ctxt, "select_host", spec=spec)
    handle = await client.call_async(ctxt, "rebuild", instance=uuid)
    async with await client.stream(ctxt, "export", image=image) as blocks:
        async for block in blocks:
            ...
"""

from __future__ import annotations

import logging
from typing import Any

from rpcframe import exceptions, wire
from rpcframe import serializer as msg_serializer
from rpcframe.aio import deadlines, handles
from rpcframe.rpc import client as rpc_client
from rpcframe.rpc import handles as rpc_handles
from rpcframe.target import Target

__all__ = ["AsyncCallContext", "AsyncRPCClient", "get_rpc_client"]

LOG = logging.getLogger(__name__)


class AsyncCallContext(rpc_client._CallSettings):
    """A target plus call settings, with coroutines that send; what ``prepare()`` returns."""

    transport: Any  # an rpcframe.aio.transport.AsyncTransport

    async def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` on a server; returns once the transport owns the request."""
        message = self._make_message(ctxt, method, kwargs)
        context = self.serializer.serialize_context(ctxt)
        self._check(message.get("version"))
        try:
            await self.transport._send(
                self.target,
                context,
                message,
                retry=self.retry,
                transport_options=self.transport_options,
            )
        except exceptions.TransportDriverError as exc:
            raise exceptions.ClientSendError(self.target, exc) from exc

    async def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on a server and return its result (as RPCClient.call).

        Cancelling the task that awaits it cancels the call on the server: it
        is a :meth:`call_async` awaited at once, so a call that runs longer
        than ``announce_after`` is announced and can be told (a shorter one
        costs nothing more than a plain call). Servers that do not know
        rpcframe's extensions (oslo.messaging's) ignore them.
        """
        return await (await self.call_async(ctxt, method, **kwargs))

    async def call_async(
        self,
        ctxt: Any,
        method: str,
        *,
        announce_after: float = rpc_handles.ANNOUNCE_AFTER,
        **kwargs: Any,
    ) -> handles.AsyncCallHandle:
        """Send a call; return an :class:`~rpcframe.aio.handles.AsyncCallHandle` once sent.

        ``announce_after`` as for :meth:`rpcframe.RPCClient.call_async`.
        """
        rpc_client._check_seconds("announce_after", announce_after)
        message, context, timeout = self._prepare_call(ctxt, method, kwargs)
        msg_id = wire.new_id()
        handle = handles.AsyncCallHandle(
            self.transport, msg_id, method, timeout, ctxt, self.serializer,
            self.call_monitor_timeout,
        )  # fmt: skip
        await self._send_watched(
            message,
            context,
            msg_id,
            handle,
            wire.CallOptions(announce=announce_after or True),
            _on_the_wire(timeout),
        )
        return handle

    async def stream(
        self, ctxt: Any, method: str, *, window: int = rpc_handles.DEFAULT_WINDOW, **kwargs: Any
    ) -> handles.AsyncStream:
        """Call a generator endpoint; return an :class:`~rpcframe.aio.handles.AsyncStream`."""
        rpc_client._check_window(window)
        message, context, timeout = self._prepare_call(ctxt, method, kwargs)
        msg_id = wire.new_id()
        chunks = handles.AsyncStream(
            self.transport, msg_id, method, timeout, ctxt, self.serializer, window,
            self.call_monitor_timeout,
        )  # fmt: skip
        options = wire.CallOptions(announce=True, window=window)
        await self._send_watched(message, context, msg_id, chunks, options, _on_the_wire(timeout))
        return chunks

    async def _send_watched(
        self,
        message: dict[str, Any],
        context: Any,
        msg_id: str,
        watcher: Any,
        options: wire.CallOptions,
        timeout: float,
    ) -> None:
        try:
            await self.transport._send_watched(
                self.target,
                context,
                message,
                msg_id,
                watcher,
                options,
                timeout,
                call_monitor_timeout=self.call_monitor_timeout,
                retry=self.retry,
                transport_options=self.transport_options,
            )
        except exceptions.TransportDriverError as exc:
            raise exceptions.ClientSendError(self.target, exc) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target!r} timeout={self.timeout}>"


AsyncCallContext._context_class = AsyncCallContext


def _on_the_wire(timeout: float) -> float:
    """The call's timeout as its request carries it: an ``asyncio.timeout()`` may shorten it.

    Only the request's: the caller's own wait keeps the call's timeout, so
    that the ``asyncio.timeout()`` ends it first, as asyncio users expect
    (``TimeoutError``, the call cancelled on the server).
    """
    left = deadlines.seconds_left(timeout)
    return timeout if left is None else max(left, 0.001)


class AsyncRPCClient(AsyncCallContext):
    """Sends calls and casts from asyncio code; arguments as :class:`rpcframe.RPCClient`'s."""

    def __init__(
        self,
        transport: Any,
        target: Target,
        timeout: float | None = None,
        version_cap: str | None = None,
        serializer: msg_serializer.Serializer | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: Any = None,
    ) -> None:
        super().__init__(
            transport,
            target,
            serializer or msg_serializer.NoOpSerializer(),
            timeout,
            version_cap,
            retry,
            call_monitor_timeout,
            transport_options,
        )


def get_rpc_client(transport: Any, target: Target, **kwargs: Any) -> AsyncRPCClient:
    """Build an asyncio RPC client; keyword arguments are :class:`AsyncRPCClient`'s."""
    return AsyncRPCClient(transport, target, **kwargs)
