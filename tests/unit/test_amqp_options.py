"""The RabbitMQ driver's options, URL parameters, TLS settings and naming.

No broker: building the driver does not connect.
"""

from __future__ import annotations

import ssl

import amqp
import pytest
from amqp import serialization
from oslo_config import cfg

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp import frames
from rpcframe.drivers.amqp import topology as topology_module
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
    # Removed in oslo.messaging 18, still written by deployment tools.
    removed = {"heartbeat_in_pthread"}
    for ours in opts.rabbit_opts:
        if ours.dest in removed:
            continue
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


def test_tls_without_a_ca_verifies_against_the_system_cas_and_checks_the_host_name():
    settings = _driver("rabbit://h1/", ssl=True).settings.ssl
    # No ca_certs: py-amqp then loads the system's trusted CAs.
    assert settings == {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}


def test_tls_verification_is_off_only_when_the_url_says_so_and_that_is_logged(tmp_path, caplog):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    url = "rabbit://h1/?ssl=true&ssl_verify=false"
    settings = _driver(url, ssl_ca_file=str(ca)).settings.ssl
    assert settings == {"cert_reqs": ssl.CERT_NONE}
    assert any("ssl_verify=false" in r.getMessage() for r in caplog.records)


def test_tls_verification_stays_on_when_the_url_says_true():
    settings = _driver("rabbit://h1/?ssl=true&ssl_verify=yes").settings.ssl
    assert settings is not None and settings["cert_reqs"] == ssl.CERT_REQUIRED


def test_a_tls_verification_switch_that_is_not_a_boolean_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="ssl_verify='maybe'"):
        _driver("rabbit://h1/?ssl=true&ssl_verify=maybe")


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
@pytest.mark.parametrize("compression", [None, "application/x-gzip"])
def test_pre_encoded_properties_match_py_amqps_encoding(expiration, message_id, compression):
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
    headers = None
    if compression is not None:
        properties["application_headers"] = {"compression": compression}
        headers = frames.encode_headers((("compression", compression),))
    expected = amqp.Message(b"", **properties)._serialize_properties()
    assert frames.encode_properties(expiration, message_id, headers) == expected


# -- what deployment tools configure (Kolla-Ansible) ----------------------------------

KOLLA = {
    "rabbit_quorum_queue": True,
    "rabbit_transient_quorum_queue": True,
    "rabbit_stream_fanout": True,
    "rabbit_qos_prefetch_count": 50,
}


def _server_queues(topology):
    return topology.subscriptions(
        [
            base.Address("nova", "compute"),
            base.Address("nova", "compute", server="host-1"),
            base.Address("nova", "compute", fanout=True),
        ],
        pool=None,
    )


def test_transient_quorum_makes_reply_queues_durable_quorum_queues_that_still_expire():
    queue = _driver("rabbit://h1/", rabbit_transient_quorum_queue=True).topology.reply_queue()
    assert queue.durable and not queue.auto_delete
    assert queue.arguments == {"x-queue-type": "quorum", "x-expires": 1_800_000}


def test_transient_quorum_makes_fanout_queues_and_exchanges_durable():
    topology = _driver(
        "rabbit://h1/", rabbit_transient_quorum_queue=True, rabbit_quorum_delivery_limit=3
    ).topology
    fanout = _server_queues(topology)[2]
    assert fanout.name.startswith("compute_fanout_") and fanout.durable
    assert fanout.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-expires": 1_800_000,
    }
    ((exchange, key),) = fanout.bindings
    assert (exchange.name, exchange.durable, exchange.auto_delete, key) == (
        "compute_fanout",
        True,
        True,
        "compute",
    )
    route = topology.route(base.Address("nova", "compute", fanout=True))
    assert route.exchange == exchange


def test_transient_quorum_leaves_topic_queues_to_rabbit_quorum_queue():
    topology = _driver("rabbit://h1/", rabbit_transient_quorum_queue=True).topology
    topic = _server_queues(topology)[0]
    assert not topic.durable and topic.arguments == {}


def test_stream_fanout_shares_one_durable_stream_per_topic_that_keeps_messages_for_the_ttl():
    topology = _driver("rabbit://h1/", rabbit_transient_queues_ttl=600, **KOLLA).topology
    topic, server, fanout = _server_queues(topology)
    assert fanout.name == "compute_fanout" and fanout.stream
    assert fanout.durable and not fanout.auto_delete and not fanout.private
    assert fanout.arguments == {"x-queue-type": "stream", "x-max-age": "600s"}
    assert fanout.consumer_arguments is None
    assert topic.arguments == server.arguments == {"x-queue-type": "quorum"}
    assert _server_queues(topology)[2] == fanout  # every listener, the same stream


def test_a_stream_without_ttl_has_no_retention_limit():
    topology = _driver("rabbit://h1/", rabbit_transient_queues_ttl=0, **KOLLA).topology
    assert _server_queues(topology)[2].arguments == {"x-queue-type": "stream"}


def test_stream_fanout_needs_a_prefetch_count():
    settings = {**KOLLA, "rabbit_qos_prefetch_count": 0}
    with pytest.raises(exceptions.ConfigurationError, match="rabbit_qos_prefetch_count"):
        _driver("rabbit://h1/", **settings)


def test_stream_fanout_needs_transient_quorum_queues():
    settings = {**KOLLA, "rabbit_transient_quorum_queue": False}
    with pytest.raises(exceptions.ConfigurationError, match="rabbit_transient_quorum_queue"):
        _driver("rabbit://h1/", **settings)


@pytest.mark.parametrize("quorum", ["rabbit_quorum_queue", "rabbit_transient_quorum_queue"])
def test_mirrored_and_quorum_queues_exclude_each_other(quorum):
    with pytest.raises(exceptions.ConfigurationError, match=f"rabbit_ha_queues and {quorum}"):
        _driver("rabbit://h1/", rabbit_ha_queues=True, **{quorum: True})


def test_ha_queues_mark_every_queue_but_streams_for_mirroring():
    topology = _driver("rabbit://h1/?rabbit_ha_queues=true").topology
    topic, _, fanout = _server_queues(topology)
    assert topic.arguments == {"x-ha-policy": "all"}
    assert fanout.arguments == {"x-ha-policy": "all", "x-expires": 1_800_000}
    assert topology.reply_queue().arguments == {"x-ha-policy": "all", "x-expires": 1_800_000}
    notify = topology.route(base.Address("nova", "n.info", kind=base.NOTIFY)).queue
    assert notify is not None and notify.arguments == {"x-ha-policy": "all"}


def test_cancel_on_failover_is_asked_for_by_every_consumer_of_a_classic_queue():
    topology = _driver("rabbit://h1/", enable_cancel_on_failover=True).topology
    for queue in [*_server_queues(topology), topology.reply_queue()]:
        assert queue.consumer_arguments == {"x-cancel-on-ha-failover": True}, queue.name


def test_cancel_on_failover_is_not_asked_for_quorum_queues_and_streams():
    # RabbitMQ refuses a quorum queue's consumer that asks for it.
    topology = _driver("rabbit://h1/", enable_cancel_on_failover=True, **KOLLA).topology
    for queue in [*_server_queues(topology), topology.reply_queue()]:
        assert queue.consumer_arguments is None, queue.name


def test_an_unknown_compression_is_a_clear_error():
    with pytest.raises(exceptions.ConfigurationError, match="kombu_compression 'snappy'"):
        _driver("rabbit://h1/?kombu_compression=snappy")


@pytest.mark.parametrize("name", ["gzip", "bz2"])
def test_compressed_sends_carry_kombus_compression_header(name):
    publisher = _driver("rabbit://h1/", kombu_compression=name)._sender()
    try:
        assert publisher._headers is not None
        encoded = frames.encode_properties(None, None, publisher._headers)
        decoded, _ = serialization.decode_properties_basic(encoded, 0)
        assert decoded["application_headers"]["compression"].startswith("application/x-")
    finally:
        publisher.close()


def test_the_queue_manager_names_reply_and_fanout_queues(tmp_path):
    driver = _driver(
        "rabbit://h1/",
        use_queue_manager=True,
        hostname="node7",
        processname="nova-conductor",
    )
    assert driver.queue_manager is not None
    driver.queue_manager.counter_file = str(tmp_path / "counter")
    driver.queue_manager.lock_path = str(tmp_path)
    reply = driver.topology.reply_queue()
    fanout = _server_queues(driver.topology)[2]
    assert reply.name == "reply_node7:nova-conductor:1"
    assert fanout.name == "compute_fanout_node7:nova-conductor:2"
    # The names come back after a restart: the queues stay for the next process.
    assert not reply.private and not fanout.private


def test_without_a_lock_directory_the_queue_manager_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("OSLO_LOCK_PATH", raising=False)
    driver = _driver("rabbit://h1/", use_queue_manager=True, hostname="n", processname="p")
    assert driver.queue_manager is not None
    driver.queue_manager.lock_path = None
    with pytest.raises(exceptions.ConfigurationError, match=r"\[oslo_concurrency\] lock_path"):
        driver.topology.reply_queue()


def test_the_lock_directory_is_oslo_concurrencys_option(tmp_path):
    conf = cfg.ConfigOpts()
    path = tmp_path / "service.conf"
    path.write_text(
        f"[oslo_messaging_rabbit]\nuse_queue_manager = true\n"
        f"[oslo_concurrency]\nlock_path = {tmp_path}\n"
    )
    conf(["--config-file", str(path)])
    driver = RabbitDriver(conf, TransportURL.parse(conf, "rabbit://h1/"))
    assert driver.queue_manager is not None and driver.queue_manager.lock_path == str(tmp_path)


# -- refused declarations name the options ----------------------------------------------


def _refused(arg, kind, name, received, current):
    return (
        f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {kind} '{name}' in vhost '/': "
        f"received {received} but current is {current}"
    )


def test_a_quorum_queue_declared_classic_names_rabbit_quorum_queue():
    topology = _driver("rabbit://h1/").topology
    topic = _server_queues(topology)[0]
    text = _refused("x-queue-type", "queue", "compute", "none", "the value 'quorum'")
    message = topology_module.refusal(topic, text)
    assert "rabbit_quorum_queue" in message and "'compute'" in message


def test_a_durable_reply_queue_declared_transient_names_transient_quorum():
    queue = _driver("rabbit://h1/").topology.reply_queue()
    text = _refused("durable", "queue", queue.name, "'false'", "'true'")
    assert "rabbit_transient_quorum_queue" in topology_module.refusal(queue, text)


def test_a_stream_with_another_retention_names_the_ttl_option():
    queue = _server_queues(_driver("rabbit://h1/", **KOLLA).topology)[2]
    text = _refused("x-max-age", "queue", queue.name, "the value '1800s'", "the value '60s'")
    assert "rabbit_transient_queues_ttl" in topology_module.refusal(queue, text)


def test_exchange_flags_are_told_apart_from_queue_arguments():
    text = _refused("durable", "exchange", "compute_fanout", "'false'", "'true'")
    assert topology_module.inequivalent(text) == ("exchange", "durable")
    assert topology_module.inequivalent(text) in topology_module.TOLERATED
    assert topology_module.inequivalent("NOT_FOUND - no queue 'x'") is None


def test_a_queue_refused_as_durable_because_it_exists_transient_is_told_apart():
    transient = _refused("durable", "queue", "compute", "'true'", "'false'")
    durable = _refused("durable", "queue", "compute", "'false'", "'true'")
    assert topology_module.exists_transient(transient)
    assert not topology_module.exists_transient(durable)
    assert not topology_module.exists_transient(
        _refused("durable", "exchange", "compute_fanout", "'true'", "'false'")
    )
