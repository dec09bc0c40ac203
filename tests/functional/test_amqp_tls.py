"""The RabbitMQ driver over real TLS, with a CA the test makes and throws away.

A TLS-terminating proxy started by the test sits in front of the shared
broker (whose configuration stays untouched); it requires a client
certificate from the same CA.

The broker's certificate is verified by default, against the system's CAs
when no ``ssl_ca_file`` is given; one that fails is refused at once with
AuthenticationError naming the host and the reason, never retried. Only
the transport URL's ``ssl_verify=false`` turns the checks off, with a
warning.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import exceptions
from rpcframe.drivers import base
from tests import brokers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

tls = pytest.importorskip("tests.functional.tls")


@pytest.fixture
def pki(tmp_path: Path) -> Any:
    return tls.make_pki(tmp_path)


@pytest.fixture
def proxy(pki: Any) -> Iterator[Any]:
    brokers.require_rabbitmq()
    with tls.TlsProxy(pki, (brokers.RABBIT_HOST, brokers.RABBIT_PORT)) as running:
        yield running


@pytest.fixture
def topic() -> Iterator[str]:
    name = f"tls_{uuid.uuid4().hex[:12]}"
    yield name
    brokers.delete_queues(prefixes=(name,))


#: Longest a refused certificate may take to fail: one attempt, no retries.
FAIL_FAST = 5.0


def _transport(
    host: str, port: int, pki: Any, ca: Path | None = None, *, trust: bool = True, query: str = ""
) -> rpcframe.Transport:
    """A TLS transport to the proxy; ``trust``: ssl_ca_file is the test's CA (else unset)."""
    conf = cfg.ConfigOpts()
    conf([])
    rpcframe.opts.register_all(conf)
    group = rpcframe.opts.RABBIT_GROUP
    conf.set_override("ssl", True, group)
    if trust:
        conf.set_override("ssl_ca_file", str(ca or pki.ca), group)
    conf.set_override("ssl_cert_file", str(pki.client_cert), group)
    conf.set_override("ssl_key_file", str(pki.client_key), group)
    return rpcframe.get_rpc_transport(conf, f"rabbit://guest:guest@{host}:{port}/{query}")


def _refused_at_once(transport: rpcframe.Transport, topic: str) -> exceptions.AuthenticationError:
    """Send with unbounded retries: the refusal must come from the first attempt."""
    started = time.monotonic()
    try:
        with pytest.raises(exceptions.AuthenticationError) as info:
            transport._driver.send(base.Address("openstack", topic), b"{}", timeout=30)
    finally:
        transport.cleanup()
    assert time.monotonic() - started < FAIL_FAST
    return info.value


def _untrusted(message: str) -> bool:
    """Whether ``message`` says the certificate chains to no trusted CA (OpenSSL's words)."""
    return "failed verification: " in message and (
        "self-signed certificate" in message or "unable to get local issuer" in message
    )


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_calls_and_casts_work_over_verified_tls(pki, proxy, topic):
    transport = _transport("localhost", proxy.port, pki)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Echo()])
    server.start()
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=20)
        assert client.call({}, "echo", value="over tls") == "over tls"
        client.cast({}, "echo", value="cast over tls")
        assert proxy.relayed >= 2  # the sending and the listening connection
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_a_host_name_the_certificate_does_not_name_is_refused_at_once(pki, proxy, topic):
    # The certificate names "localhost" only; 127.0.0.1 is the same proxy.
    transport = _transport("127.0.0.1", proxy.port, pki)
    error = _refused_at_once(transport, topic)
    assert f"127.0.0.1:{proxy.port}" in str(error)
    assert "failed verification: IP address mismatch" in str(error)


def test_a_certificate_from_another_ca_is_refused_at_once(pki, proxy, topic, tmp_path):
    (tmp_path / "other").mkdir()
    other = tls.make_pki(tmp_path / "other", ca_name="another CA")
    transport = _transport("localhost", proxy.port, pki, ca=other.ca)
    error = _refused_at_once(transport, topic)
    assert f"localhost:{proxy.port}" in str(error)
    assert _untrusted(str(error))


def test_without_a_ca_file_a_certificate_no_system_ca_signed_is_refused_at_once(pki, proxy, topic):
    transport = _transport("localhost", proxy.port, pki, trust=False)
    error = _refused_at_once(transport, topic)
    assert f"localhost:{proxy.port}" in str(error)
    assert _untrusted(str(error))


def test_a_server_whose_broker_certificate_is_refused_fails_to_start(pki, proxy, topic):
    transport = _transport("localhost", proxy.port, pki, trust=False)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Echo()])
    started = time.monotonic()
    try:
        with pytest.raises(rpcframe.MessagingException, match="TLS certificate"):
            server.start()
    finally:
        transport.cleanup()
    assert time.monotonic() - started < FAIL_FAST


def test_turning_verification_off_in_the_url_connects_to_any_certificate_and_says_so(
    pki, proxy, topic, caplog
):
    # Neither the CA nor the host name would pass.
    caplog.set_level(logging.WARNING, logger="rpcframe.drivers.amqp")
    transport = _transport("127.0.0.1", proxy.port, pki, trust=False, query="?ssl_verify=false")
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Echo()])
    server.start()
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=20)
        assert client.call({}, "echo", value="unverified") == "unverified"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    assert any("ssl_verify=false" in r.getMessage() for r in caplog.records)
