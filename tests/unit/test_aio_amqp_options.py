"""The asyncio RabbitMQ driver reads a URL and its options as the threaded driver does.

No broker: building either driver does not connect.
"""

from __future__ import annotations

import ssl
import zlib

import pytest
from oslo_config import cfg

pytest.importorskip("amqp")

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp.aio import driver as aio_driver
from rpcframe.drivers.amqp.aio.link import ssl_context
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.transport import TransportURL


def _conf(**overrides: object) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    for name, value in overrides.items():
        conf.set_override(name, value, group=opts.RABBIT_GROUP)
    return conf


def _both(url: str, **overrides: object) -> tuple[RabbitDriver, aio_driver.AsyncRabbitDriver]:
    conf = _conf(**overrides)
    parsed = TransportURL.parse(conf, url)
    return RabbitDriver(conf, parsed), aio_driver.AsyncRabbitDriver(conf, parsed)


@pytest.mark.parametrize(
    "url, overrides",
    [
        ("rabbit://u:p@h1:5673,v:q@h2/vhost?heartbeat_timeout_threshold=30", {}),
        ("rabbit://h1/?rabbit_quorum_queue=true&rabbit_transient_queues_ttl=60", {}),
        ("rabbit://h1/", {"amqp_durable_queues": True, "amqp_auto_delete": True}),
        ("rabbit://h1/", {"rabbit_transient_quorum_queue": True, "rabbit_ha_queues": False}),
    ],
)
def test_both_drivers_reach_the_same_brokers_and_declare_the_same_entities(url, overrides):
    threaded, asyncio_driver = _both(url, **overrides)
    assert asyncio_driver.settings == threaded.settings
    addresses = [
        base.Address("openstack", "compute"),
        base.Address("openstack", "compute", server="host-1"),
        base.Address("openstack", "compute", fanout=True),
        base.Address("openstack", "notifications.info", kind=base.NOTIFY),
    ]
    for address in addresses:
        assert asyncio_driver.topology.route(address) == threaded.topology.route(address)
    mine = asyncio_driver.topology.subscriptions(addresses[:2], None)
    theirs = threaded.topology.subscriptions(addresses[:2], None)
    assert mine == theirs


def test_option_combinations_oslo_refuses_are_refused_by_the_asyncio_driver_too():
    with pytest.raises(exceptions.ConfigurationError, match="rabbit_ha_queues"):
        _both("rabbit://h1/", rabbit_ha_queues=True, rabbit_quorum_queue=True)


def test_a_compression_the_asyncio_driver_cannot_do_is_refused_when_it_is_built():
    conf = _conf(kombu_compression="lzma")
    with pytest.raises(exceptions.ConfigurationError, match="gzip or bz2"):
        aio_driver.AsyncRabbitDriver(conf, TransportURL.parse(conf, "rabbit://h1/"))


def test_a_kombu_gzip_body_is_decompressed():
    body = b'{"oslo.version": "2.0"}'
    headers = {"compression": "application/x-gzip"}
    assert aio_driver._decompressed(zlib.compress(body), headers) == body


def test_the_tls_context_verifies_unless_the_url_says_otherwise():
    verified = _both("rabbit://h1/?ssl=true")[1].settings.ssl
    context = ssl_context(verified or {})
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    unverified = _both("rabbit://h1/?ssl=true&ssl_verify=false")[1].settings.ssl
    context = ssl_context(unverified or {})
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
