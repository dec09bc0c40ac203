"""The RabbitMQ driver's options: ``[oslo_messaging_rabbit]``, with oslo.messaging's names.

Every option oslo.messaging defines in that group is here with its name,
type and default, so that configuration files written for oslo.messaging
(and by deployment tools) load unchanged. Those rpcframe reads but does not
act on say so in their help text and are listed in
:data:`RABBIT_ACCEPTED_ONLY`. :func:`rpcframe.opts.list_opts` lists them for
the sample configuration; the driver registers them on its ConfigOpts.
"""

from __future__ import annotations

import os
import socket
import sys

from oslo_config import cfg

__all__ = ["LOCK_GROUP", "RABBIT_ACCEPTED_ONLY", "RABBIT_GROUP", "lock_path_opts", "rabbit_opts"]

RABBIT_GROUP = "oslo_messaging_rabbit"
LOCK_GROUP = "oslo_concurrency"

#: Help text ending of the ``[oslo_messaging_rabbit]`` options rpcframe reads
#: but does not act on (kept so that oslo.messaging configuration files and
#: URL parameters stay valid); the RabbitMQ admin guide lists them.
_ACCEPTED_ONLY = " Accepted for compatibility with oslo.messaging; rpcframe does not act on it"

rabbit_opts: list[cfg.Opt] = [
    cfg.IntOpt(
        "rpc_conn_pool_size",
        default=30,
        min=1,
        help="Most connections in oslo.messaging's pool of sending connections."
        + _ACCEPTED_ONLY
        + " (one sending connection per transport, shared by every thread).",
    ),
    cfg.IntOpt(
        "conn_pool_min_size",
        default=2,
        help="Connections oslo.messaging keeps in its pool however long they "
        "are idle." + _ACCEPTED_ONLY + " (there is no pool).",
    ),
    cfg.IntOpt(
        "conn_pool_ttl",
        default=1200,
        help="Seconds an idle pooled connection of oslo.messaging lives."
        + _ACCEPTED_ONLY
        + " (there is no pool).",
    ),
    cfg.BoolOpt("ssl", default=False, help="Connect to RabbitMQ over TLS."),
    cfg.StrOpt(
        "ssl_version",
        default="",
        help="Pin the TLS protocol version (TLSv1_2, TLSv1_3; older names are "
        "accepted where the local OpenSSL still offers them). Empty: the "
        "highest version both sides support.",
    ),
    cfg.StrOpt("ssl_key_file", default="", help="Private key of the client certificate (TLS)."),
    cfg.StrOpt("ssl_cert_file", default="", help="Client certificate file (TLS)."),
    cfg.StrOpt(
        "ssl_ca_file",
        default="",
        help="Certificate authority bundle the broker's certificate must chain "
        "to. Empty: the system's trusted certificate authorities. The "
        "certificate is always verified, and must name the host connected "
        "to; one that fails is refused at once (AuthenticationError), never "
        "retried. Only the transport URL parameter ssl_verify=false (rpcframe's "
        "own; oslo.messaging has none) turns the checks off, with a warning.",
    ),
    cfg.BoolOpt(
        "ssl_enforce_hostname_verification",
        default=True,
        deprecated_for_removal=True,
        deprecated_reason="Host name verification should always be on.",
        help="Check that the broker's certificate names the host connected to "
        "(the chain is checked either way, unless the URL says ssl_verify=false).",
    ),
    cfg.BoolOpt(
        "ssl_enforce_fips_mode",
        default=False,
        deprecated_for_removal=True,
        deprecated_reason="OpenSSL 3 has no switch for FIPS mode; the option "
        "has no effect in oslo.messaging either.",
        help="Put OpenSSL into FIPS mode." + _ACCEPTED_ONLY + ".",
    ),
    cfg.FloatOpt(
        "kombu_reconnect_delay",
        default=1.0,
        min=0.0,
        max=4.5,
        help="Seconds to wait before reconnecting after the broker cancelled a "
        "consumer (its queue was deleted or moved).",
    ),
    cfg.FloatOpt(
        "kombu_reconnect_splay",
        default=0.0,
        min=0.0,
        help="Up to this many extra random seconds are added to every "
        "reconnection wait, so that many clients do not reconnect at once.",
    ),
    cfg.StrOpt(
        "kombu_compression",
        help="Compress the body of every message sent (gzip, bz2; also lzma, "
        "brotli or zstd where their modules are installed) and mark it with "
        "kombu's 'compression' header. Received messages that carry the "
        "header are decompressed whatever this option says. Unset: no "
        "compression. oslo.messaging calls this experimental.",
    ),
    cfg.IntOpt(
        "kombu_missing_consumer_retry_timeout",
        deprecated_name="kombu_reconnect_timeout",
        default=60,
        help="Seconds oslo.messaging keeps trying to send a reply whose "
        "caller's reply queue is missing." + _ACCEPTED_ONLY + ": a server "
        "retries such a reply until the caller's own deadline instead.",
    ),
    cfg.StrOpt(
        "kombu_failover_strategy",
        choices=("round-robin", "shuffle"),
        default="round-robin",
        help="How the next broker is chosen when the transport URL lists "
        "several and the current one fails.",
    ),
    cfg.StrOpt(
        "rabbit_login_method",
        choices=("PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"),
        default="AMQPLAIN",
        help="SASL mechanism used to log in to RabbitMQ.",
    ),
    cfg.IntOpt(
        "rabbit_retry_interval",
        min=1,
        default=1,
        help="Seconds to wait before the second attempt to reconnect.",
    ),
    cfg.IntOpt(
        "rabbit_retry_backoff",
        default=2,
        min=0,
        help="Seconds added to the wait after every further failed attempt to reconnect.",
    ),
    cfg.IntOpt(
        "rabbit_interval_max",
        default=30,
        min=1,
        help="Longest wait, in seconds, between two attempts to reconnect.",
    ),
    cfg.BoolOpt(
        "rabbit_ha_queues",
        default=False,
        help="Declare every queue with the argument x-ha-policy: all, which "
        "asked RabbitMQ 2.x to mirror it on every node. Since RabbitMQ 3.0 "
        "only a policy mirrors queues (and RabbitMQ 4 has no mirrored queues "
        "at all: use quorum queues); the argument is still sent, so that "
        "queues declared by oslo.messaging services with this option match. "
        "Cannot be combined with rabbit_quorum_queue or "
        "rabbit_transient_quorum_queue.",
    ),
    cfg.BoolOpt(
        "rabbit_quorum_queue",
        default=False,
        help="Declare RPC topic and notification queues as quorum queues "
        "(x-queue-type: quorum; RabbitMQ 3.8 or later). Quorum queues are "
        "always durable, so amqp_durable_queues is then ignored. Queues that "
        "already exist with another type must be deleted first.",
    ),
    cfg.BoolOpt(
        "rabbit_transient_quorum_queue",
        default=False,
        help="Declare reply and fanout queues as quorum queues too (durable, "
        "x-queue-type: quorum, still removed by the broker after "
        "rabbit_transient_queues_ttl unused), and fanout exchanges durable, "
        "so that they survive the loss of a RabbitMQ node. Needs RabbitMQ 3.8 "
        "or later.",
    ),
    cfg.IntOpt(
        "rabbit_quorum_delivery_limit",
        default=0,
        help="With quorum queues: drop (or dead-letter) a message after it was "
        "redelivered this many times. 0: no limit.",
    ),
    cfg.IntOpt(
        "rabbit_quorum_max_memory_length",
        default=0,
        help="With quorum queues: most messages a queue keeps in memory. 0: no limit.",
    ),
    cfg.IntOpt(
        "rabbit_quorum_max_memory_bytes",
        default=0,
        help="With quorum queues: most bytes a queue keeps in memory. 0: no limit.",
    ),
    cfg.IntOpt(
        "rabbit_transient_queues_ttl",
        min=0,
        default=1800,
        help="Seconds an unused reply or fanout queue lives before the broker "
        "deletes it (x-expires). 0 disables the expiry; then something else "
        "(a broker policy) must delete the queues of processes that died. "
        "With rabbit_stream_fanout it is instead how long the fanout stream "
        "keeps messages (x-max-age); 0 then keeps them until the disk is full.",
    ),
    cfg.IntOpt(
        "rabbit_qos_prefetch_count",
        default=0,
        help="Most unacknowledged messages RabbitMQ pushes to each consumer of "
        "a listener (basic.qos per consumer), as in oslo.messaging. 0: no such "
        "limit (not allowed with rabbit_stream_fanout: stream consumers need "
        "one). Unlike oslo.messaging, 0 does not let a busy server hoard: "
        "whatever this option says, a listener of classic queues also has a "
        "channel-wide window that its server keeps at what its free workers "
        "can start (about that many, one when none is free, times the batch "
        "size of a batch listener), so the requests a busy server cannot "
        "start go to the topic's other servers. RabbitMQ refuses such a "
        "window on quorum queues: there this option is the only bound.",
    ),
    cfg.IntOpt(
        "heartbeat_timeout_threshold",
        default=60,
        help="Seconds without any traffic after which the broker (and the "
        "client) consider the connection dead. 0 disables AMQP heartbeats.",
    ),
    cfg.IntOpt(
        "heartbeat_rate",
        default=3,
        help="How many heartbeats are sent within heartbeat_timeout_threshold.",
    ),
    cfg.BoolOpt(
        "heartbeat_in_pthread",
        default=False,
        deprecated_for_removal=True,
        deprecated_reason="It only chose between a native and a green thread "
        "for heartbeats under eventlet; oslo.messaging removed it in 18.0.",
        help="Send heartbeats from a native thread in an eventlet-patched "
        "process." + _ACCEPTED_ONLY + ": each connection's keeper thread "
        "sends its heartbeats in any process model.",
    ),
    cfg.BoolOpt(
        "direct_mandatory_flag",
        default=True,
        deprecated_for_removal=True,
        deprecated_reason="Replies are always sent mandatory.",
        help="Send replies with the mandatory flag, so that a reply whose "
        "queue is missing comes back instead of vanishing."
        + _ACCEPTED_ONLY
        + ": replies are always mandatory.",
    ),
    cfg.BoolOpt(
        "enable_cancel_on_failover",
        default=False,
        help="Consume with the argument x-cancel-on-ha-failover: true, so that "
        "RabbitMQ cancels a consumer of a mirrored queue whose leader moved "
        "(the driver then subscribes again) instead of keeping it silently. "
        "Stream consumers (rabbit_stream_fanout) do not get the argument.",
    ),
    cfg.BoolOpt(
        "use_queue_manager",
        default=False,
        help="Name reply and fanout queues <hostname>:<processname>:<counter> "
        "instead of with a random id, so that a restarted service uses its "
        "queues again. The counter is shared, as oslo.messaging shares it, "
        "through a file in /dev/shm locked in [oslo_concurrency] lock_path "
        "(which must then be set, or OSLO_LOCK_PATH), so that the processes "
        "of one host never pick the same name. Such queues are left to "
        "expire (rabbit_transient_queues_ttl) rather than deleted.",
    ),
    cfg.StrOpt(
        "hostname",
        default=socket.gethostname(),
        sample_default="node1.example.com",
        help="The host name the queue manager puts in queue names. Defaults "
        "to socket.gethostname().",
    ),
    cfg.StrOpt(
        "processname",
        default=os.path.basename(sys.argv[0]),
        sample_default="nova-api",
        help="The process name the queue manager puts in queue names. "
        "Defaults to the name of the running program.",
    ),
    cfg.BoolOpt(
        "rabbit_stream_fanout",
        default=False,
        help="Replace the per-listener fanout queues by one stream queue "
        "per topic, <topic>_fanout (x-queue-type: stream; RabbitMQ 3.9 or "
        "later), which every listener of the topic reads from its own "
        "offset. Needs rabbit_transient_quorum_queue and a positive "
        "rabbit_qos_prefetch_count. rabbit_transient_queues_ttl sets how "
        "long the stream keeps messages.",
    ),
    cfg.BoolOpt(
        "amqp_durable_queues",
        default=False,
        help="Declare exchanges and RPC topic and notification queues durable, "
        "so that they and their persistent messages survive a broker restart. "
        "Ignored (always durable) with rabbit_quorum_queue.",
    ),
    cfg.BoolOpt(
        "amqp_auto_delete",
        default=False,
        help="Let the broker delete RPC topic and notification queues (and "
        "their exchanges) when their last consumer leaves.",
    ),
]

#: The ``[oslo_messaging_rabbit]`` options that change nothing in rpcframe.
RABBIT_ACCEPTED_ONLY = frozenset(
    opt.dest for opt in rabbit_opts if _ACCEPTED_ONLY in (opt.help or "")
)

#: The lock directory of the queue manager: oslo.concurrency's option, used
#: as it is when oslo.concurrency is installed, else this equivalent. Not
#: listed for the generator: it belongs to oslo.concurrency's group.
lock_path_opts: list[cfg.Opt] = [
    cfg.StrOpt(
        "lock_path",
        default=os.environ.get("OSLO_LOCK_PATH"),
        help="Directory for inter-process lock files. Defaults to the "
        "OSLO_LOCK_PATH environment variable.",
    ),
]
