"""asyncio clients and servers on the same drivers and wire protocol as the threaded ones.

::

    import rpcframe.aio

    transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
    server = rpcframe.aio.get_rpc_server(transport, target, [Endpoint()])
    await server.start()
    client = rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic="compute"))
    print(await client.call(ctxt, "ping"))

No monkey-patching: ``async def`` endpoints run on the event loop, plain
ones in a thread pool; a threaded client calls an asyncio server and the
reverse, on the same transport URL (``fake://`` in one process shares its
queues between both kinds). See the asyncio guide in the documentation.
"""

from rpcframe.aio.client import AsyncCallContext, AsyncRPCClient, get_rpc_client
from rpcframe.aio.handles import AsyncCallHandle, AsyncStream
from rpcframe.aio.notify import (
    AsyncBatchNotificationServer,
    AsyncNotificationServer,
    Notifier,
    get_batch_notification_listener,
    get_notification_listener,
)
from rpcframe.aio.server import AsyncRPCServer, get_rpc_server
from rpcframe.aio.transport import AsyncTransport, get_rpc_transport

__all__ = [
    "AsyncBatchNotificationServer",
    "AsyncCallContext",
    "AsyncCallHandle",
    "AsyncNotificationServer",
    "AsyncRPCClient",
    "AsyncRPCServer",
    "AsyncStream",
    "AsyncTransport",
    "Notifier",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
