"""Context sanitising: what of a context leaves the process with a notification."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from oslo_context import context as oslo_context

import rpcframe
from rpcframe import redaction, wire
from rpcframe.notify import drivers
from rpcframe.serializer import RequestContextSerializer


def sent_context(transport, ctxt, serializer=None):
    """The context as it goes on the wire with a notification."""
    bodies = []
    send = transport._driver.send

    def capture(address, body, **kwargs):
        bodies.append(body)
        return send(address, body, **kwargs)

    notifier = rpcframe.Notifier(
        transport, driver="messagingv2", topics=["t"], serializer=serializer
    )
    with mock.patch.object(transport._driver, "send", capture):
        notifier.info(ctxt, "a.b", {})
    return wire.parse_notification(bodies[-1]).context


def test_drivers_are_handed_the_serialized_context_as_oslo_hands_it(transport):
    class Context:
        def redacted_copy(self):
            return self

    ctxt = Context()
    rpcframe.Notifier(transport, driver="test").info(ctxt, "a.b", {})
    assert drivers.NOTIFICATIONS[-1][0] is ctxt


def test_a_plain_dict_is_kept_without_its_secrets(transport):
    ctxt = {"user_id": "u-1", "request_id": "req-1", "auth_token": "t0k3n", "password": "pw"}
    assert sent_context(transport, ctxt) == {"user_id": "u-1", "request_id": "req-1"}


def test_secrets_are_removed_at_every_depth(transport):
    ctxt = {"user": {"name": "ann", "Service_Token": "x", "creds": {"api_key": "k", "id": 3}}}
    assert sent_context(transport, ctxt) == {"user": {"name": "ann", "creds": {"id": 3}}}


@pytest.mark.parametrize(
    "key",
    [
        "auth_token",
        "service_token",
        "X-Auth-Token",
        "password",
        "admin_passwd",
        "client_secret",
        "credentials",
        "private_key",
        "api_key",
        "APIKey",
        "auth_key",
        "authorization",
    ],
)
def test_a_key_named_like_a_secret_is_removed(key):
    assert redaction.strip_secrets({key: "s", "keep": 1}) == {"keep": 1}


def test_none_is_an_empty_context(transport):
    assert sent_context(transport, None) == {}


def test_an_oslo_request_context_sends_its_redacted_copy(transport):
    ctxt = oslo_context.RequestContext(
        user_id="u-1", project_id="p-1", auth_token="secret-token", request_id="req-1"
    )
    sent = sent_context(transport, ctxt, RequestContextSerializer())
    assert sent["user"] == "u-1" and sent["project_id"] == "p-1"
    assert sent["request_id"] == "req-1"
    assert "secret-token" not in repr(sent)
    assert not any("token" in key for key in sent)


def test_an_object_with_to_dict_is_sent_as_its_dict_without_secrets(transport):
    class Context:
        def to_dict(self):
            return {"user_id": "u-1", "auth_token": "t"}

    assert sent_context(transport, Context()) == {"user_id": "u-1"}


def test_an_object_that_cannot_become_a_dict_is_left_out_with_a_warning(transport, caplog):
    class Opaque:
        pass

    with caplog.at_level(logging.WARNING):
        assert sent_context(transport, Opaque()) == {}
    assert "Opaque context cannot be redacted" in caplog.text


def test_the_callers_context_is_not_modified(transport):
    ctxt = {"user_id": "u-1", "auth_token": "t"}
    assert sent_context(transport, ctxt) == {"user_id": "u-1"}
    assert ctxt == {"user_id": "u-1", "auth_token": "t"}


def test_masking_for_logs_keeps_the_keys_and_hides_the_values():
    masked = redaction.mask_secrets({"payload": {"password": "pw", "items": [{"token": "t"}]}})
    assert masked == {"payload": {"password": "***", "items": [{"token": "***"}]}}
