"""The RabbitMQ driver over real TLS, with a CA the test makes and throws away.

A TLS-terminating proxy started by the test sits in front of the shared
broker (whose configuration stays untouched); it requires a client
certificate from the same CA.
"""

from __future__ import annotations

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


def _transport(host: str, port: int, pki: Any, ca: Path | None = None) -> rpcframe.Transport:
    conf = cfg.ConfigOpts()
    conf([])
    rpcframe.opts.register_all(conf)
    group = rpcframe.opts.RABBIT_GROUP
    conf.set_override("ssl", True, group)
    conf.set_override("ssl_ca_file", str(ca or pki.ca), group)
    conf.set_override("ssl_cert_file", str(pki.client_cert), group)
    conf.set_override("ssl_key_file", str(pki.client_key), group)
    return rpcframe.get_rpc_transport(conf, f"rabbit://guest:guest@{host}:{port}/")


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


def test_a_host_name_the_certificate_does_not_name_is_refused(pki, proxy, topic):
    # The certificate names "localhost" only; 127.0.0.1 is the same proxy.
    transport = _transport("127.0.0.1", proxy.port, pki)
    try:
        with pytest.raises(exceptions.MessageDeliveryFailure, match=r"certificate|hostname"):
            transport._driver.send(base.Address("openstack", topic), b"{}", retry=1)
    finally:
        transport.cleanup()


def test_a_certificate_from_another_ca_is_refused(pki, proxy, topic, tmp_path):
    (tmp_path / "other").mkdir()
    other = tls.make_pki(tmp_path / "other", ca_name="another CA")
    transport = _transport("localhost", proxy.port, pki, ca=other.ca)
    try:
        with pytest.raises(exceptions.MessageDeliveryFailure, match="certificate"):
            transport._driver.send(base.Address("openstack", topic), b"{}", retry=1)
    finally:
        transport.cleanup()
