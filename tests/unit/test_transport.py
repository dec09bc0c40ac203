"""Transport URLs, driver loading, and transport lifetime."""

from __future__ import annotations

import warnings

import pytest
from oslo_config import cfg

import rpcframe
import rpcframe.conffixture
from rpcframe import exceptions


@pytest.fixture
def registered(conf):
    """A ConfigOpts with rpcframe's options registered, as ConfFixture does."""
    rpcframe.conffixture.ConfFixture(conf)
    return conf


def parse(conf, url):
    return rpcframe.TransportURL.parse(conf, url)


def test_a_full_url_is_parsed_into_its_parts(conf):
    url = parse(conf, "rabbit://user:pa%40ss@host1:5672,user2:p2@host2:5673/vhost?ssl=1&x=a&x=b")
    assert url.transport == "rabbit"
    assert url.virtual_host == "vhost"
    assert url.hosts == [
        rpcframe.TransportHost("host1", 5672, "user", "pa@ss"),
        rpcframe.TransportHost("host2", 5673, "user2", "p2"),
    ]
    assert url.query == {"ssl": "1", "x": "a,b"}


def test_ipv6_hosts_are_parsed(conf):
    url = parse(conf, "rabbit://u:p@[::1]:5672/")
    assert url.hosts == [rpcframe.TransportHost("::1", 5672, "u", "p")]


def test_a_url_without_hosts_is_fine(conf):
    url = parse(conf, "fake:/")
    assert url.transport == "fake" and url.hosts == [] and url.virtual_host == ""


def test_the_configured_url_is_used_when_none_is_given(registered):
    registered.set_override("transport_url", "fake://cfghost/")
    assert parse(registered, None).hosts[0].hostname == "cfghost"


def test_str_gives_the_full_url_back(conf):
    text = "rabbit://user:secret@host:5672/vhost"
    assert str(parse(conf, text)) == text


def test_repr_and_masked_never_show_the_password(conf):
    url = parse(conf, "rabbit://user:secret@host:5672/")
    assert "secret" not in repr(url)
    assert url.masked() == "rabbit://user:****@host:5672/"
    assert "secret" not in repr(url.hosts[0])


def test_a_url_without_a_scheme_is_invalid_and_the_error_hides_the_password(conf):
    with pytest.raises(rpcframe.InvalidTransportURL) as info:
        parse(conf, "//user:secret@host/")
    assert "secret" not in str(info.value)
    assert "No scheme specified" in str(info.value)


def test_a_bad_port_is_invalid_and_the_error_hides_the_password(conf):
    with pytest.raises(rpcframe.InvalidTransportURL) as info:
        parse(conf, "rabbit://user:secret@host:99999/")
    assert "bad port '99999'" in str(info.value)
    assert "secret" not in str(info.value)


def test_a_url_that_is_not_a_string_is_invalid(conf):
    with pytest.raises(rpcframe.InvalidTransportURL, match="must be a string"):
        parse(conf, 42)


def test_an_unknown_driver_lists_the_installed_ones(conf):
    with pytest.raises(rpcframe.DriverLoadFailure) as info:
        rpcframe.get_rpc_transport(conf, "nosuch://host/")
    assert "no driver named 'nosuch'" in str(info.value)
    assert "fake" in str(info.value)


def test_a_driver_parameter_the_driver_does_not_know_is_a_clear_error(conf):
    with pytest.raises(exceptions.ConfigurationError, match="colour"):
        rpcframe.get_rpc_transport(conf, "fake://?colour=red")


def test_conf_must_be_a_config_opts():
    with pytest.raises(TypeError, match="ConfigOpts"):
        rpcframe.get_rpc_transport({"transport_url": "fake://"})  # type: ignore[arg-type]


def test_a_private_config_opts_works_and_cfg_conf_is_not_touched(conf):
    before = set(cfg.CONF)
    with rpcframe.get_rpc_transport(conf, "fake://") as transport:
        assert transport.conf is conf
        assert conf.control_exchange == "openstack"
        assert conf.rpc_response_timeout == 60
        assert conf.executor_thread_pool_size == 64
    assert set(cfg.CONF) == before


def test_get_transport_still_works_and_warns_as_deprecated(conf):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transport = rpcframe.get_transport(conf, "fake://")
    transport.cleanup()
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_set_transport_defaults_changes_the_default_exchange():
    rpcframe.set_transport_defaults("nova")
    try:
        conf = cfg.ConfigOpts()
        conf([])
        with rpcframe.get_rpc_transport(conf, "fake://"):
            assert conf.control_exchange == "nova"
    finally:
        rpcframe.set_transport_defaults("openstack")


def test_notification_transport_falls_back_to_the_rpc_url(registered):
    registered.set_override("transport_url", "fake://rpc-host/")
    with rpcframe.get_notification_transport(registered) as transport:
        assert transport.url.hosts[0].hostname == "rpc-host"


def test_notification_transport_prefers_its_own_url(registered):
    registered.set_override(
        "transport_url", "fake://notify-host/", group="oslo_messaging_notifications"
    )
    with rpcframe.get_notification_transport(registered) as transport:
        assert transport.url.hosts[0].hostname == "notify-host"


def test_cleanup_is_idempotent_and_later_calls_fail_clearly(conf):
    transport = rpcframe.get_rpc_transport(conf, "fake://")
    transport.cleanup()
    transport.cleanup()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic="t"), timeout=1)
    with pytest.raises(exceptions.ClientSendError, match="cleaned up"):
        client.call({}, "x")


def test_transport_options_default_to_at_most_once():
    assert rpcframe.TransportOptions().at_least_once is False
    assert rpcframe.TransportOptions(at_least_once=True).at_least_once is True


def test_an_unparsable_host_is_an_invalid_transport_url_with_the_password_masked(conf):
    with pytest.raises(rpcframe.InvalidTransportURL, match="Invalid IPv6 URL") as info:
        rpcframe.TransportURL.parse(conf, "rabbit://user:secret@[::1/")
    assert "secret" not in str(info.value)
