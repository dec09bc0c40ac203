"""RPC client metrics sent to oslo.metrics' socket, in its format."""

from __future__ import annotations

import json
import socket

import pytest

import rpcframe
from rpcframe import metrics


@pytest.fixture
def collector_socket(tmp_path):
    """A Unix datagram socket standing where oslo.metrics listens."""
    path = str(tmp_path / "metrics.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()


def received(sock, count):
    return [json.loads(sock.recv(65536)) for _ in range(count)]


class Echo:
    def echo(self, ctxt, value):
        return value


def test_a_call_sends_oslo_messagings_client_metrics(
    conf, transport, topic, serve, collector_socket
):
    path, sock = collector_socket
    conf.register_opts(metrics.metrics_opts, group=metrics.GROUP)
    conf.set_override("metrics_enabled", True, group=metrics.GROUP)
    conf.set_override("metrics_socket_file", path, group=metrics.GROUP)
    conf.set_override("metrics_process_name", "api-1", group=metrics.GROUP)
    serve(Echo())
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
    assert client.call({}, "echo", value=1) == 1
    sent = received(sock, 3)
    assert [m["name"] for m in sent] == [
        "rpc_client_invocation_start_total",
        "rpc_client_processing_seconds",
        "rpc_client_invocation_end_total",
    ]
    assert {m["module"] for m in sent} == {"oslo_messaging"}
    assert sent[0]["action"] == {"action": "inc", "value": None}
    assert sent[1]["action"]["action"] == "observe" and sent[1]["action"]["value"] >= 0
    assert sent[0]["labels"] == {
        "call_type": "call",
        "exchange": None,
        "topic": topic,
        "namespace": None,
        "version": None,
        "server": None,
        "fanout": None,
        "method": "echo",
        "timeout": None,
        "process": "api-1",
    }


def test_a_failed_call_is_counted_with_its_exception(conf, transport, topic, collector_socket):
    path, sock = collector_socket
    conf.register_opts(metrics.metrics_opts, group=metrics.GROUP)
    conf.set_override("metrics_enabled", True, group=metrics.GROUP)
    conf.set_override("metrics_socket_file", path, group=metrics.GROUP)
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=0)
    with pytest.raises(rpcframe.MessagingTimeout):
        client.call({}, "nobody_serves_this")
    start, failed = received(sock, 2)
    assert start["name"] == "rpc_client_invocation_start_total"
    assert failed["name"] == "rpc_client_exception_total"
    assert failed["labels"]["exception"] == "MessagingTimeout"


def test_without_metrics_enabled_nothing_is_sent(conf, transport, topic, serve, collector_socket):
    path, sock = collector_socket
    conf.register_opts(metrics.metrics_opts, group=metrics.GROUP)
    conf.set_override("metrics_socket_file", path, group=metrics.GROUP)
    serve(Echo())
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
    client.cast({}, "echo", value="quiet")
    conf.set_override("metrics_enabled", True, group=metrics.GROUP)
    client.prepare(topic=topic).call({}, "echo", value="loud")
    # The first metric to arrive is the enabled call's: the cast sent none.
    first = received(sock, 1)[0]
    assert first["labels"]["call_type"] == "call"
