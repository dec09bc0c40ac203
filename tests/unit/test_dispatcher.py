"""RPCDispatcher: endpoint choice, access policies, argument errors."""

from __future__ import annotations

import logging
import types

import pytest

import rpcframe
from rpcframe import opts
from rpcframe.rpc import dispatcher as rpc_dispatcher


def incoming(method, args=None, namespace=None, version=None, ctxt=None):
    message = {"method": method, "args": args or {}}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    return types.SimpleNamespace(ctxt=ctxt or {}, message=message)


class V1:
    target = rpcframe.Target(version="1.3")

    def which(self, ctxt):
        return "v1"

    def only_v1(self, ctxt):
        return "only"


class V2:
    target = rpcframe.Target(version="2.1")

    def which(self, ctxt):
        return "v2"


class InNamespace:
    target = rpcframe.Target(namespace="admin", version="1.0", legacy_namespaces=["old_admin"])

    def which(self, ctxt):
        return "admin"


class Plain:
    def which(self, ctxt, n=0):
        return ("plain", n)

    def _hidden(self, ctxt):
        return "hidden"

    @rpcframe.expose
    def shown(self, ctxt):
        return "shown"

    def broken_inside(self, ctxt, x):
        return len(x)


def dispatch(endpoints, msg, **kwargs):
    return rpcframe.RPCDispatcher(endpoints, None, **kwargs).dispatch(msg)


def test_the_first_endpoint_with_a_compatible_version_is_chosen():
    assert dispatch([V1(), V2()], incoming("which", version="2.0")) == "v2"
    assert dispatch([V1(), V2()], incoming("which", version="1.2")) == "v1"


def test_a_request_without_version_means_1_0():
    assert dispatch([V1(), V2()], incoming("which")) == "v1"


def test_an_endpoint_without_target_implements_1_0_in_no_namespace():
    assert dispatch([Plain()], incoming("which", {"n": 2})) == ("plain", 2)


def test_namespaces_and_legacy_namespaces_select_the_endpoint():
    endpoints = [V1(), InNamespace()]
    assert dispatch(endpoints, incoming("which", namespace="admin")) == "admin"
    assert dispatch(endpoints, incoming("which", namespace="old_admin")) == "admin"
    assert dispatch(endpoints, incoming("which")) == "v1"


def test_a_method_missing_on_compatible_endpoints_is_no_such_method():
    with pytest.raises(rpcframe.NoSuchMethod) as info:
        dispatch([V1(), V2()], incoming("only_v1", version="2.0"))
    assert info.value.method == "only_v1"


def test_no_compatible_endpoint_is_unsupported_version():
    with pytest.raises(rpcframe.UnsupportedVersion) as info:
        dispatch([V1()], incoming("which", version="3.0"))
    assert (info.value.version, info.value.method) == ("3.0", "which")


def test_an_unknown_namespace_is_unsupported_version():
    with pytest.raises(rpcframe.UnsupportedVersion):
        dispatch([V1()], incoming("which", namespace="elsewhere"))


def test_private_methods_are_refused_by_default():
    with pytest.raises(rpcframe.NoSuchMethod):
        dispatch([Plain()], incoming("_hidden"))


def test_the_legacy_policy_allows_private_methods():
    msg = incoming("_hidden")
    assert dispatch([Plain()], msg, access_policy=rpcframe.LegacyRPCAccessPolicy) == "hidden"


def test_the_explicit_policy_allows_only_exposed_methods():
    policy = rpcframe.ExplicitRPCAccessPolicy
    assert dispatch([Plain()], incoming("shown"), access_policy=policy) == "shown"
    with pytest.raises(rpcframe.NoSuchMethod):
        dispatch([Plain()], incoming("which"), access_policy=policy)


def test_an_access_policy_instance_is_accepted_too():
    msg = incoming("_hidden")
    assert dispatch([Plain()], msg, access_policy=rpcframe.LegacyRPCAccessPolicy()) == "hidden"


def test_an_access_policy_that_is_not_a_policy_is_refused():
    with pytest.raises(TypeError, match="RPCAccessPolicyBase"):
        rpcframe.RPCDispatcher([Plain()], None, access_policy=dict)


def test_an_endpoint_target_attribute_must_be_a_target():
    class Bad:
        def target(self, ctxt):
            return 1

    with pytest.raises(TypeError, match="reserved endpoint attribute"):
        rpcframe.RPCDispatcher([Bad()], None)


def test_arguments_the_method_does_not_take_are_a_clear_type_error():
    with pytest.raises(TypeError, match=r"cannot take the arguments sent \(m\).*accepts \(n\)"):
        dispatch([Plain()], incoming("which", {"m": 1}))


def test_a_type_error_raised_inside_the_method_is_left_alone():
    with pytest.raises(TypeError, match="has no len"):
        dispatch([Plain()], incoming("broken_inside", {"x": 5}))


def test_the_serializer_rebuilds_context_and_arguments_and_serializes_the_result():
    class Upper(rpcframe.NoOpSerializer):
        def deserialize_context(self, ctxt):
            return {"user": ctxt["user"].upper()}

        def deserialize_entity(self, ctxt, entity):
            return entity * 2

        def serialize_entity(self, ctxt, entity):
            return [ctxt["user"], entity]

    class Endpoint:
        def double(self, ctxt, x):
            return x + 1

    result = rpcframe.RPCDispatcher([Endpoint()], Upper()).dispatch(
        incoming("double", {"x": 5}, ctxt={"user": "bob"})
    )
    assert result == ["BOB", 11]


def test_expected_exceptions_travel_as_themselves_and_are_logged_quietly(
    transport, topic, serve, client, caplog
):
    class Endpoint:
        @rpcframe.expected_exceptions(KeyError)
        def lookup(self, ctxt, key):
            return {}[key]

    serve(Endpoint())
    with caplog.at_level(logging.DEBUG, logger="rpcframe"):
        with pytest.raises(KeyError):
            client.call({}, "lookup", key="missing")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any("Expected exception" in r.getMessage() for r in caplog.records)


def test_an_unexpected_exception_is_logged_as_an_error(transport, topic, serve, client, caplog):
    class Endpoint:
        def lookup(self, ctxt, key):
            return {}[key]

    serve(Endpoint())
    with caplog.at_level(logging.ERROR, logger="rpcframe"):
        with pytest.raises(KeyError):
            client.call({}, "lookup", key="missing")
    assert any("Exception during message handling" in r.getMessage() for r in caplog.records)


def test_ping_is_answered_when_enabled(conf, topic, serve, client):
    opts.register_core(conf)
    conf.set_override("rpc_ping_enabled", True)
    serve(Plain())
    assert client.call({}, rpc_dispatcher.PING_METHOD) == "pong"


def test_ping_is_not_answered_by_default(topic, serve, client):
    serve(Plain())
    with pytest.raises(rpcframe.RemoteError, match="NoSuchMethod"):
        client.call({}, rpc_dispatcher.PING_METHOD)
