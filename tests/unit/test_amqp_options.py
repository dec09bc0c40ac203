"""The RabbitMQ driver's options, URL parameters, TLS settings and naming.

No broker: building the driver does not connect.
"""

from __future__ import annotations

import ssl

import amqp
import pytest
from oslo_config import cfg

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp import frames
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.transport import TransportURL


def _driver(url: str, **overrides: object) -> RabbitDriver:
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    for name, value in overrides.items():
        conf.set_override(name, value, group=opts.RABBIT_GROUP)
    return RabbitDriver(conf, TransportURL.parse(conf, url))


def test_every_option_oslo_messaging_also_has_keeps_its_type_and_default():
    oslo_rabbit = pytest.importorskip("oslo_messaging._drivers.impl_rabbit")
    oslo_amqp = pytest.importorskip("oslo_messaging._drivers.amqp")
    theirs = {opt.dest: opt for opt in [*oslo_rabbit.rabbit_opts, *oslo_amqp.amqp_opts]}
    for ours in opts.rabbit_opts:
        assert ours.dest in theirs, f"{ours.dest} is not an oslo.messaging option"
        assert type(ours) is type(theirs[ours.dest]), ours.dest
        assert ours.default == theirs[ours.dest].default, ours.dest


def test_the_rabbit_group_is_listed_for_the_config_generator():
    groups = dict(opts.list_opts())
    assert {opt.dest for opt in groups["oslo_messaging_rabbit"]} == {
        opt.dest for opt in opts.rabbit_opts
    }


def test_url_parameters_override_the_configuration():
    driver = _driver(
        "rabbit://h1/?heartbeat_timeout_threshold=30&amqp_durable_queues=true",
        heartbeat_timeout_threshold=10,
    )
    assert driver.options.heartbeat_timeout_threshold == 30
    assert driver.settings.heartbeat == 30
    assert driver.topology.durable is True


def test_configuration_values_are_used_without_url_parameters():
    driver = _driver("rabbit://h1/", rabbit_qos_prefetch_count=7, rabbit_quorum_queue=True)
    assert driver.options.rabbit_qos_prefetch_count == 7
    assert driver.topology.quorum and driver.topology.durable


def test_an_unknown_url_parameter_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="no_such_option"):
        _driver("rabbit://h1/?no_such_option=1")


def test_a_url_parameter_of_the_wrong_type_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="heartbeat_rate"):
        _driver("rabbit://h1/?heartbeat_rate=often")


def test_hosts_credentials_and_virtual_host_come_from_the_url():
    driver = _driver("amqp://alice:pw@h1:5673,bob:pw2@h2/vhost")
    hosts = driver.settings.hosts
    assert [(h.hostname, h.port, h.username, h.password) for h in hosts] == [
        ("h1", 5673, "alice", "pw"),
        ("h2", 5672, "bob", "pw2"),
    ]
    assert driver.settings.virtual_host == "vhost"
    assert "pw" not in repr(hosts) and "pw" not in repr(driver)


def test_a_url_without_hosts_means_the_local_broker_as_guest():
    driver = _driver("rabbit://")
    (host,) = driver.settings.hosts
    assert (host.hostname, host.port, host.username) == ("localhost", 5672, "guest")
    assert driver.settings.virtual_host == "/"


def test_tls_with_a_ca_verifies_the_certificate_and_the_host_name(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until connecting")
    settings = _driver("rabbit://h1/?ssl=true", ssl_ca_file=str(ca)).settings.ssl
    assert settings is not None
    assert settings["cert_reqs"] == ssl.CERT_REQUIRED
    assert settings["ca_certs"] == str(ca)
    assert "server_hostname" in settings


def test_tls_host_name_verification_can_be_turned_off(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    settings = _driver(
        "rabbit://h1/?ssl=true",
        ssl_ca_file=str(ca),
        ssl_enforce_hostname_verification=False,
    ).settings.ssl
    assert settings is not None
    assert settings["cert_reqs"] == ssl.CERT_REQUIRED and "server_hostname" not in settings


def test_tls_without_a_ca_does_not_verify():
    settings = _driver("rabbit://h1/", ssl=True).settings.ssl
    assert settings == {"cert_reqs": ssl.CERT_NONE}


def test_tls_version_pins_the_protocol():
    settings = _driver("rabbit://h1/?ssl=true&ssl_version=TLSv1_2").settings.ssl
    assert settings is not None
    assert settings["tls_minimum_version"] is ssl.TLSVersion.TLSv1_2
    assert settings["tls_maximum_version"] is ssl.TLSVersion.TLSv1_2


def test_an_unknown_tls_version_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="SSLv9"):
        _driver("rabbit://h1/?ssl=true&ssl_version=SSLv9")


def test_a_missing_tls_file_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="ssl_ca_file"):
        _driver("rabbit://h1/?ssl=true&ssl_ca_file=/no/such/ca.pem")


def test_without_tls_there_are_no_tls_settings():
    assert _driver("rabbit://h1/").settings.ssl is None


# -- names on the broker (oslo.messaging's) ---------------------------------------------


def test_rpc_addresses_map_to_oslo_messaging_names():
    topology = _driver("rabbit://h1/").topology
    topic = topology.route(base.Address("nova", "compute"))
    server = topology.route(base.Address("nova", "compute", server="host-1"))
    fanout = topology.route(base.Address("nova", "compute", fanout=True))
    assert (topic.exchange.name, topic.exchange.type, topic.routing_key) == (
        "nova",
        "topic",
        "compute",
    )
    assert server.routing_key == "compute.host-1"
    assert (fanout.exchange.name, fanout.exchange.type) == ("compute_fanout", "fanout")
    assert fanout.exchange.auto_delete and not fanout.exchange.durable


def test_a_notification_send_declares_its_queue_first():
    route = _driver("rabbit://h1/").topology.route(
        base.Address("nova", "notifications.info", kind=base.NOTIFY)
    )
    assert route.routing_key == "notifications.info"
    assert route.queue is not None and route.queue.name == "notifications.info"
    assert route.queue.bindings == ((route.exchange, "notifications.info"),)


def test_replies_go_through_the_default_exchange():
    route = _driver("rabbit://h1/").topology.route(base.Address("", "reply_abc", kind=base.REPLY))
    assert route.exchange is None and route.routing_key == "reply_abc"


def test_a_server_listens_on_topic_server_and_private_fanout_queues():
    topology = _driver("rabbit://h1/?rabbit_transient_queues_ttl=60").topology
    queues = topology.subscriptions(
        [
            base.Address("nova", "compute"),
            base.Address("nova", "compute", server="host-1"),
            base.Address("nova", "compute", fanout=True),
        ],
        pool=None,
    )
    names = [q.name for q in queues]
    assert names[:2] == ["compute", "compute.host-1"]
    assert names[2].startswith("compute_fanout_")
    assert queues[2].arguments == {"x-expires": 60_000} and queues[2].private
    assert not queues[0].private and queues[0].arguments == {}


def test_a_pool_shares_one_queue_named_after_it():
    topology = _driver("rabbit://h1/").topology
    (queue,) = topology.subscriptions(
        [
            base.Address("nova", "notifications.info", kind=base.NOTIFY),
            base.Address("nova", "notifications.error", kind=base.NOTIFY),
        ],
        pool="audit",
    )
    assert queue.name == "audit"
    assert [key for _, key in queue.bindings] == ["notifications.info", "notifications.error"]


def test_quorum_queues_carry_their_arguments():
    topology = _driver(
        "rabbit://h1/?rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=5"
    ).topology
    (queue,) = topology.subscriptions([base.Address("nova", "compute")], pool=None)
    assert queue.durable
    assert queue.arguments == {"x-queue-type": "quorum", "x-delivery-limit": 5}


def test_reply_queues_are_private_and_expire():
    queue = _driver("rabbit://h1/").topology.reply_queue()
    assert queue.name.startswith("reply_") and queue.private
    assert queue.arguments == {"x-expires": 1_800_000}


# -- the pre-encoded frames --------------------------------------------------------


@pytest.mark.parametrize("expiration", [None, "1", "60000"])
@pytest.mark.parametrize("message_id", [None, "42"])
def test_pre_encoded_properties_match_py_amqps_encoding(expiration, message_id):
    properties = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "delivery_mode": 2,
        "priority": 0,
    }
    if expiration is not None:
        properties["expiration"] = expiration
    if message_id is not None:
        properties["message_id"] = message_id
    expected = amqp.Message(b"", **properties)._serialize_properties()
    assert frames.encode_properties(expiration, message_id) == expected
