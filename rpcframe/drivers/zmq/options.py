"""The ZeroMQ driver's options: ``[oslo_messaging_zmq]`` and ``[matchmaker_redis]``.

Where oslo.messaging's removed ZeroMQ driver had an option with the same
meaning, it keeps its name (``rpc_zmq_bind_address``, ``rpc_zmq_host``,
``rpc_zmq_min_port``, ``rpc_zmq_max_port``, ``zmq_linger``,
``zmq_target_expire``, ``zmq_target_update``, ``rpc_retry_attempts``,
``rpc_ack_timeout_base``; ``[matchmaker_redis]`` ``host``, ``port``,
``password``, ``sentinel_hosts``, ``sentinel_group_name``,
``socket_timeout``). Some of its defaults are not kept, on purpose: an
infinite linger leaked sockets, and records that lived five minutes routed
calls to dead servers for five minutes. Query parameters of the transport
URL override either group (``zmq+redis://host:6379/?zmq_target_expire=10``).
"""

from __future__ import annotations

import socket

from oslo_config import cfg

__all__ = ["REDIS_GROUP", "ZMQ_GROUP", "redis_opts", "zmq_opts"]

ZMQ_GROUP = "oslo_messaging_zmq"
REDIS_GROUP = "matchmaker_redis"

zmq_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "rpc_zmq_matchmaker",
        default="redis",
        choices=[
            ("redis", "records in Redis ([matchmaker_redis]); any number of hosts"),
            (
                "static",
                "the servers' endpoints are the transport URL's hosts (or "
                "rpc_zmq_static_hosts_file); one host or tests",
            ),
        ],
        help="Where servers say where they listen and clients look them up. A "
        "zmq+redis:// URL chooses redis; a zmq:// URL with hosts chooses static.",
    ),
    cfg.StrOpt(
        "rpc_zmq_static_hosts_file",
        default="",
        help="For the static name service: a file listing the servers' "
        "endpoints, host:port, one a line ('#' starts a comment). Used when "
        "the transport URL names no hosts.",
    ),
    cfg.StrOpt(
        "rpc_zmq_bind_address",
        default="*",
        help="Address the process's one listening socket binds to: an IP "
        "address, an interface name, or '*' for every interface.",
    ),
    cfg.StrOpt(
        "rpc_zmq_host",
        default=socket.gethostname(),
        sample_default="localhost",
        help="Host name or IP address other processes connect to: what this "
        "process registers in the name service. Must be reachable from every "
        "peer.",
    ),
    cfg.PortOpt(
        "rpc_zmq_min_port",
        default=49153,
        help="Lowest port the listening socket may take (with the redis name "
        "service, which records the port it got).",
    ),
    cfg.IntOpt(
        "rpc_zmq_max_port",
        default=65535,
        min=1,
        max=65536,
        help="Highest port the listening socket may take.",
    ),
    cfg.IntOpt(
        "rpc_zmq_bind_port_retries",
        default=100,
        min=1,
        help="How many random ports of the range to try before giving up.",
    ),
    cfg.FloatOpt(
        "zmq_linger",
        default=1.0,
        min=0,
        help="Seconds a closing socket may still spend sending what it holds. "
        "Finite by design (oslo.messaging's infinite default leaked sockets); "
        "whatever is left after it is dropped, and was never acknowledged.",
    ),
    cfg.IntOpt(
        "zmq_target_expire",
        default=30,
        min=2,
        help="Seconds a name-service record lives unless refreshed: a server "
        "that died without unregistering leaves the rotation within this time "
        "(sooner when a client finds it unreachable).",
    ),
    cfg.IntOpt(
        "zmq_target_update",
        default=10,
        min=1,
        help="Seconds between refreshes of this process's records; must be "
        "below zmq_target_expire.",
    ),
    cfg.FloatOpt(
        "zmq_heartbeat_interval",
        default=2.0,
        min=0.1,
        help="Seconds between ZeroMQ heartbeats (ZMQ_HEARTBEAT_IVL) on every "
        "connection, so that a dead peer is noticed while the connection is idle.",
    ),
    cfg.FloatOpt(
        "zmq_heartbeat_timeout",
        default=6.0,
        min=0.1,
        help="Seconds without traffic or heartbeat after which a peer counts as "
        "dead (ZMQ_HEARTBEAT_TIMEOUT); calls in flight to it fail at once.",
    ),
    cfg.FloatOpt(
        "rpc_zmq_connect_timeout",
        default=3.0,
        min=0.1,
        help="Seconds to wait for a connection to a peer (TCP and handshake) "
        "before trying the next server of the topic.",
    ),
    cfg.FloatOpt(
        "rpc_ack_timeout_base",
        default=5.0,
        min=0.1,
        help="Seconds a sender waits for the receiving process's "
        "acknowledgement before sending the message again (with the same "
        "id: the receiver drops a copy it already has).",
    ),
    cfg.IntOpt(
        "rpc_retry_attempts",
        default=3,
        min=0,
        help="How many times a message that was not acknowledged is sent "
        "again before the send fails (send's own retry argument, when given, "
        "takes precedence).",
    ),
    cfg.StrOpt(
        "zmq_curve_server_key_file",
        default="",
        help="CURVE: the servers' certificate (zmq.auth format). Every process "
        "listens (its reply inbox at least), so it needs the secret "
        "certificate; a process's peers are checked against the public key "
        "in it. Empty: connections are neither encrypted nor authenticated.",
    ),
    cfg.StrOpt(
        "zmq_curve_client_key_file",
        default="",
        help="CURVE: this process's client secret certificate, which the "
        "servers it sends to must list in zmq_curve_authorized_keys_dir. "
        "Empty: the server certificate is used as the client's too.",
    ),
    cfg.StrOpt(
        "zmq_curve_authorized_keys_dir",
        default="",
        help="CURVE: a directory of public certificates of the clients this "
        "process accepts messages from (zmq.auth format). Required when "
        "zmq_curve_server_key_file is set.",
    ),
    cfg.StrOpt(
        "zmq_notification_store",
        default="none",
        choices=[
            (
                "none",
                "notifications go straight to the listening processes; none is kept "
                "for a pool that has no listener running",
            ),
            (
                "redis",
                "notifications are kept in Redis streams ([matchmaker_redis]) until a "
                "listener of each pool took them: durable, as RabbitMQ's queues",
            ),
        ],
        help="Where notifications wait for their listeners.",
    ),
    cfg.IntOpt(
        "zmq_notification_stream_length",
        default=100_000,
        min=1,
        help="With zmq_notification_store=redis: about how many notifications a "
        "stream (one per topic and priority) keeps at most; the oldest go first.",
    ),
    cfg.FloatOpt(
        "zmq_notification_claim_after",
        default=30.0,
        min=0.1,
        help="With zmq_notification_store=redis: seconds a notification taken by "
        "a listener that neither handled it nor gave it back (it crashed) waits "
        "before another listener of its pool takes it over.",
    ),
]

redis_opts: list[cfg.Opt] = [
    cfg.HostAddressOpt("host", default="127.0.0.1", help="Redis host of the name service."),
    cfg.PortOpt("port", default=6379, help="Redis port."),
    cfg.StrOpt("password", default="", secret=True, help="Redis password."),
    cfg.IntOpt("db", default=0, min=0, help="Redis database number."),
    cfg.ListOpt(
        "sentinel_hosts",
        default=[],
        help="Redis Sentinel hosts (host:port); when set, the name service "
        "asks them for the master of sentinel_group_name instead of host:port.",
    ),
    cfg.StrOpt(
        "sentinel_group_name",
        default="oslo-messaging-zeromq",
        help="Redis Sentinel group (master) name.",
    ),
    cfg.IntOpt(
        "socket_timeout",
        default=2000,
        min=1,
        help="Milliseconds one Redis command may take; past it the name "
        "service counts Redis as unreachable and routes from its cache.",
    ),
    cfg.StrOpt(
        "key_prefix",
        default="rpcframe.zmq",
        help="Prefix of every Redis key the name service writes.",
    ),
]
