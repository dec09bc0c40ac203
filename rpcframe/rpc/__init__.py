"""RPC: clients that call and cast, servers that dispatch to endpoints."""

from rpcframe.identity import Sender, current_sender
from rpcframe.rpc.client import (
    ClientSendError,
    RemoteError,
    RPCClient,
    RPCVersionCapError,
    get_rpc_client,
)
from rpcframe.rpc.current import Call, current_call
from rpcframe.rpc.dispatcher import (
    DefaultRPCAccessPolicy,
    ExpectedException,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    NoSuchMethod,
    RPCAccessPolicyBase,
    RPCDispatcher,
    RPCDispatcherError,
    UnsupportedVersion,
)
from rpcframe.rpc.handles import CallHandle, Stream
from rpcframe.rpc.server import RPCServer, expected_exceptions, expose, get_rpc_server
from rpcframe.transport import get_rpc_transport

__all__ = [
    "Call",
    "CallHandle",
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "LegacyRPCAccessPolicy",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCServer",
    "RPCVersionCapError",
    "RemoteError",
    "Sender",
    "Stream",
    "UnsupportedVersion",
    "current_call",
    "current_sender",
    "expected_exceptions",
    "expose",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
]
