"""rpcframe: transport-pluggable RPC and notifications, compatible with oslo.messaging.

``import rpcframe as oslo_messaging`` runs code written for oslo.messaging
unchanged. The public names are exactly these; everything else is reached
through its module.
"""

from rpcframe.exceptions import (
    ClientSendError,
    DriverLoadFailure,
    ExecutorLoadFailure,
    ExpectedException,
    InvalidTarget,
    InvalidTransportURL,
    MessageDeliveryFailure,
    MessageUndeliverable,
    MessagingException,
    MessagingServerError,
    MessagingTimeout,
    NoSuchMethod,
    RemoteError,
    RPCDispatcherError,
    RPCVersionCapError,
    ServerListenError,
    UnsupportedVersion,
)
from rpcframe.rpc import (
    DefaultRPCAccessPolicy,
    ExplicitRPCAccessPolicy,
    LegacyRPCAccessPolicy,
    RPCAccessPolicyBase,
    RPCClient,
    RPCDispatcher,
    expected_exceptions,
    expose,
    get_rpc_client,
    get_rpc_server,
)
from rpcframe.serializer import JsonPayloadSerializer, NoOpSerializer, Serializer
from rpcframe.server import MessageHandlingServer
from rpcframe.target import Target
from rpcframe.transport import (
    Transport,
    TransportHost,
    TransportOptions,
    TransportURL,
    get_notification_transport,
    get_rpc_transport,
    get_transport,
    set_transport_defaults,
)

__all__ = [
    "ClientSendError",
    "DefaultRPCAccessPolicy",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "ExpectedException",
    "ExplicitRPCAccessPolicy",
    "InvalidTarget",
    "InvalidTransportURL",
    "JsonPayloadSerializer",
    "LegacyRPCAccessPolicy",
    "MessageDeliveryFailure",
    "MessageHandlingServer",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "NoOpSerializer",
    "NoSuchMethod",
    "RPCAccessPolicyBase",
    "RPCClient",
    "RPCDispatcher",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "Serializer",
    "ServerListenError",
    "Target",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "UnsupportedVersion",
    "expected_exceptions",
    "expose",
    "get_notification_transport",
    "get_rpc_client",
    "get_rpc_server",
    "get_rpc_transport",
    "get_transport",
    "set_transport_defaults",
]
