"""fake:// lenient (oslo's fake, the default) and strict (production) modes."""

from __future__ import annotations

import datetime
import threading

import pytest

import rpcframe
from rpcframe import leniency
from rpcframe.drivers import fake


class Context:
    """A context object, as oslo.context's RequestContext is one."""

    def __init__(self, user):
        self.user = user

    def to_dict(self):
        return {"user": self.user}


class Seen:
    def __init__(self):
        self.contexts = []

    def whoami(self, ctxt):
        self.contexts.append(ctxt)
        return "ok"

    def when(self, ctxt):
        return datetime.datetime(2026, 12, 1, 12, 0, 0)

    def thing(self, ctxt):
        return object.__new__(Context)

    def fail(self, ctxt):
        raise LookupError("no such flavour")


@pytest.fixture(autouse=True)
def warn_afresh(monkeypatch):
    # Each kind warns once per process; every test starts as a new process would.
    monkeypatch.setattr(leniency, "_warned", set())


@pytest.fixture(params=["lenient", "strict"])
def mode(request):
    return request.param


@pytest.fixture
def served(conf, topic, mode):
    url = "fake://" if mode == "lenient" else "fake://?strict=true"
    transport = rpcframe.get_rpc_transport(conf, url)
    endpoint = Seen()
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [endpoint]
    )
    server.start()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
    yield client, endpoint
    server.stop()
    server.wait()
    transport.cleanup()


def test_the_endpoint_gets_the_callers_context_object_only_in_lenient_mode(served, mode):
    client, endpoint = served
    ctxt = Context("ann")
    if mode == "lenient":
        with pytest.warns(leniency.FakeLeniencyWarning, match="Context context object"):
            assert client.call(ctxt, "whoami") == "ok"
        assert endpoint.contexts == [ctxt]
    else:
        assert client.call(ctxt, "whoami") == "ok"
        assert endpoint.contexts == [{"user": "ann"}]


def test_a_datetime_result_comes_back_as_itself_only_in_lenient_mode(served, mode):
    client, _ = served
    if mode == "lenient":
        with pytest.warns(leniency.FakeLeniencyWarning, match="datetime result as it is"):
            when = client.call({}, "when")
        assert when == datetime.datetime(2026, 12, 1, 12, 0, 0)
    else:
        assert client.call({}, "when") == "2026-12-01T12:00:00.000000"


def test_a_result_json_cannot_hold_is_an_error_only_in_strict_mode(served, mode):
    client, _ = served
    if mode == "lenient":
        with pytest.warns(leniency.FakeLeniencyWarning, match="cannot send it"):
            assert isinstance(client.call({}, "thing"), Context)
    else:
        with pytest.raises(TypeError, match="cannot be sent"):
            client.call({}, "thing")


def test_the_endpoints_own_exception_is_raised_only_in_lenient_mode(served, mode):
    client, _ = served
    if mode == "lenient":
        with pytest.warns(leniency.FakeLeniencyWarning, match="re-raised the endpoint's"):
            with pytest.raises(LookupError) as caught:
                client.call({}, "fail")
        assert str(caught.value) == "no such flavour"
    else:
        with pytest.raises(LookupError) as caught:
            client.call({}, "fail")
        # Production's: a builtin rebuilt on this side, the remote traceback in its text.
        assert str(caught.value).startswith("no such flavour\nTraceback")


def test_each_kind_of_difference_warns_once(served, mode, recwarn):
    client, _ = served
    for _ in range(3):
        client.call(Context("ann"), "whoami")
    warned = [w for w in recwarn if issubclass(w.category, leniency.FakeLeniencyWarning)]
    assert len(warned) == (1 if mode == "lenient" else 0)


def test_a_notification_listener_gets_the_context_object_only_in_lenient_mode(conf, topic, mode):
    url = "fake://" if mode == "lenient" else "fake://?strict=true"
    transport = rpcframe.get_notification_transport(conf, url)
    seen = []
    arrived = threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            seen.append(ctxt)
            arrived.set()

    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic=topic)], [Endpoint()]
    )
    listener.start()
    try:
        notifier = rpcframe.Notifier(transport, "pub", driver="messagingv2", topics=[topic])
        ctxt = Context("bob")
        notifier.info(ctxt, "thing.happened", {})
        assert arrived.wait(10)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert seen == ([ctxt] if mode == "lenient" else [{"user": "bob"}])


def test_a_fanout_cast_stays_in_its_exchange_only_in_lenient_mode(conf, topic, mode):
    url = "fake://" if mode == "lenient" else "fake://?strict=true"
    transport = rpcframe.get_rpc_transport(conf, url)
    got = {"x1": threading.Event(), "x2": threading.Event()}

    def endpoint(name):
        class Endpoint:
            def ping(self, ctxt):
                got[name].set()

            def sync(self, ctxt):
                return got[name].is_set()

        return Endpoint()

    servers = [
        rpcframe.get_rpc_server(
            transport, rpcframe.Target(exchange=x, topic=topic, server=x), [endpoint(x)]
        )
        for x in ("x1", "x2")
    ]
    for server in servers:
        server.start()
    try:
        client = rpcframe.get_rpc_client(
            transport, rpcframe.Target(exchange="x1", topic=topic, fanout=True)
        )
        if mode == "lenient":
            with pytest.warns(leniency.FakeLeniencyWarning, match="only to the servers"):
                client.cast({}, "ping")
        else:
            client.cast({}, "ping")
        assert got["x1"].wait(10)
        if mode == "strict":
            assert got["x2"].wait(10)
        else:
            # x2's server handles requests in order: the fanout cast, had it
            # come, would have been handled before this call.
            x2 = rpcframe.get_rpc_client(
                transport, rpcframe.Target(exchange="x2", topic=topic, server="x2"), timeout=10
            )
            assert x2.call({}, "sync") is False
    finally:
        for server in servers:
            server.stop()
            server.wait()
        transport.cleanup()


def test_strict_mode_can_be_set_in_the_configuration(conf, topic):
    conf.register_opts(fake.fake_opts, group=fake.GROUP)
    conf.set_override("strict", True, group=fake.GROUP)
    transport = rpcframe.get_rpc_transport(conf, "fake://")
    assert transport.capabilities.passes_objects is False
    transport.cleanup()


def test_an_unknown_fake_url_parameter_is_refused(conf):
    with pytest.raises(rpcframe.exceptions.ConfigurationError, match="unknown transport URL"):
        rpcframe.get_rpc_transport(conf, "fake://?colour=red")
