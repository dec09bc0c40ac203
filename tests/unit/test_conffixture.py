"""ConfFixture: oslo-compatible option overrides for unit tests."""

from __future__ import annotations

import fixtures
import pytest

import rpcframe
from rpcframe import conffixture


def test_it_sets_the_transport_url_and_undoes_it(conf):
    with conffixture.ConfFixture(conf) as fixture:
        fixture.transport_url = "fake:/"
        assert conf.transport_url == "fake:/"
    assert conf.transport_url == "rabbit://"


def test_the_transport_url_can_be_given_at_construction(conf):
    with conffixture.ConfFixture(conf, transport_url="fake://x/"):
        assert conf.transport_url == "fake://x/"


def test_response_timeout_maps_to_rpc_response_timeout(conf):
    with conffixture.ConfFixture(conf) as fixture:
        fixture.response_timeout = 5
        assert conf.rpc_response_timeout == 5 == fixture.response_timeout


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("notification_driver", "driver", ["log"]),
        ("notification_transport_url", "transport_url", "fake://n/"),
        ("notification_topics", "topics", ["a", "b"]),
    ],
)
def test_old_notification_option_names_still_work(conf, old, new, value):
    with conffixture.ConfFixture(conf):
        conf.set_override(old, value)
        assert getattr(conf.oslo_messaging_notifications, new) == value
        conf.clear_override(old)
        assert getattr(conf.oslo_messaging_notifications, new) != value


def test_the_compat_wrappers_are_removed_afterwards(conf):
    original = conf.set_override
    with conffixture.ConfFixture(conf):
        assert conf.set_override is not original
    assert conf.set_override == original


def test_it_works_with_use_fixture(conf):
    class Case(fixtures.TestWithFixtures):
        def runTest(self):
            fixture = self.useFixture(rpcframe.conffixture.ConfFixture(conf))
            fixture.transport_url = "fake://"
            self.assertEqual("fake://", conf.transport_url)

    result = Case().run()
    assert result.wasSuccessful()
    assert conf.transport_url == "rabbit://"


def test_a_service_can_be_tested_end_to_end_with_it(conf):
    class Endpoint:
        def hello(self, ctxt, name):
            return f"hello {name}"

    with conffixture.ConfFixture(conf) as fixture:
        fixture.transport_url = "fake:/"
        with rpcframe.get_rpc_transport(conf) as transport:
            server = rpcframe.get_rpc_server(
                transport, rpcframe.Target(topic="svc", server="h"), [Endpoint()]
            )
            server.start()
            try:
                client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic="svc"))
                assert client.call({}, "hello", name="world") == "hello world"
            finally:
                server.stop()
                server.wait()
