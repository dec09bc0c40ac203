"""The same OpenStack-style service, unchanged, on oslo.messaging and on rpcframe.

The service in sample_service.py knows only oslo.messaging's API. Running it
on both implementations with the same assertions shows rpcframe is a drop-in:
whatever this test checks, oslo.messaging does too.
"""

from __future__ import annotations

import types
import warnings

import pytest
from oslo_config import cfg

import rpcframe

from . import sample_service

IMPLEMENTATIONS = ["rpcframe", "oslo_messaging"]


@pytest.fixture(params=IMPLEMENTATIONS)
def messaging(request):
    if request.param == "rpcframe":
        return rpcframe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("oslo_messaging")


@pytest.fixture
def service(messaging):
    conf = cfg.ConfigOpts()
    conf([])
    fixture = messaging.conffixture.ConfFixture(conf) if hasattr(messaging, "conffixture") else None
    if fixture is None:
        __import__(f"{messaging.__name__}.conffixture")
        fixture = messaging.conffixture.ConfFixture(conf)
    fixture.setUp()
    fixture.transport_url = "fake:/"
    transport = messaging.get_rpc_transport(conf, allowed_remote_exmods=[sample_service.__name__])
    api_cls, context_cls, start_server = sample_service.make_service(messaging)
    servers = [start_server(transport, "host-a"), start_server(transport, "host-b")]
    yield types.SimpleNamespace(
        messaging=messaging, transport=transport, api=api_cls, context=context_cls, servers=servers
    )
    for server, _ in servers:
        server.stop()
        server.wait()
    transport.cleanup()
    fixture.cleanUp()


def test_a_direct_call_carries_the_context_through_the_serializer(service):
    ctxt = service.context("alice", "proj", is_admin=True)
    result = service.api(service.transport).get_instance(ctxt, "host-b", "vm-1")
    assert result == {"id": "vm-1", "host": "host-b", "admin": True}
    assert service.servers[1][1].seen_users == ["alice"]


def test_an_expected_application_exception_comes_back_as_itself(service):
    with pytest.raises(sample_service.InstanceNotFound) as info:
        service.api(service.transport).get_instance(service.context("u", "p"), "host-a", "missing")
    assert info.value.instance_id == "missing"


def test_the_version_cap_decides_what_the_client_sends(service):
    ctxt = service.context("u", "p")
    assert service.api(service.transport, version_cap="5.2").resize(ctxt, "host-a", "vm", "m1") == [
        "vm",
        "m1",
        True,
    ]
    assert service.api(service.transport, version_cap="5.1").resize(ctxt, "host-a", "vm", "m1") == [
        "vm",
        "m1",
        False,
    ]


def test_a_version_above_the_cap_is_refused(service):
    api = service.api(service.transport, version_cap="5.1")
    with pytest.raises(service.messaging.RPCVersionCapError):
        api.client.prepare(version="5.2").call(service.context("u", "p"), "resize")


def test_a_namespaced_endpoint_answers_in_its_namespace(service):
    cctxt = service.api(service.transport).client.prepare(
        namespace="baseapi", version="1.0", version_cap=None, server="host-a"
    )
    assert cctxt.call(service.context("u", "p"), "ping", arg=3) == {"pong": 3}


def test_a_fanout_cast_reaches_every_server(service):
    service.api(service.transport).refresh_all(service.context("u", "p"))
    assert all(manager.refreshed.wait(20) for _, manager in service.servers)
