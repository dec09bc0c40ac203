"""The WSGI RequestNotifier: what it announces, what it leaves out, and what it never breaks."""

from __future__ import annotations

import inspect
import json
import logging

import pytest
from oslo_config import cfg

from rpcframe.notify.middleware import RequestNotifier
from rpcframe.notify.testing import record_notifications
from tests.unit.notify.conftest import take


def environ(method: str = "GET", **extra: object) -> dict[str, object]:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/servers",
        "SERVER_NAME": "api.example",
        "SERVER_PORT": "8774",
        "wsgi.url_scheme": "http",
        "wsgi.input": object(),
        **extra,
    }


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "s=1")])
    return [b"hello"]


def call(app, env):
    """Run a WSGI request; the status, headers and body the server would send."""
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = app(env, start_response)
    try:
        data = b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen.get("status"), seen.get("headers"), data


@pytest.fixture
def middleware(conf):
    def build(app=hello, **settings):
        settings.setdefault("url", "fake://")
        return RequestNotifier(app, conf, **settings)

    return build


def test_a_request_and_its_response_are_announced_without_credentials(middleware):
    app = middleware(publisher_id="api.host1", service_name="compute")
    env = environ(
        HTTP_X_AUTH_TOKEN="t0ken",
        HTTP_AUTHORIZATION="Basic c2VjcmV0",
        HTTP_COOKIE="session=abc",
        HTTP_X_REQUEST_ID="req-1",
    )
    with record_notifications() as recorded:
        status, _headers, body = call(app, env)
    assert (status, body) == ("200 OK", b"hello")
    request, response = recorded.notifications
    assert [request.event_type, response.event_type] == ["http.request", "http.response"]
    assert {request.priority, response.priority} == {"info"}
    assert request.publisher_id == "api.host1"
    seen = request.payload["request"]
    assert seen["HTTP_X_REQUEST_ID"] == "req-1"
    assert seen["HTTP_X_SERVICE_NAME"] == "compute"
    assert seen["PATH_INFO"] == "/servers"
    for secret in ("HTTP_X_AUTH_TOKEN", "HTTP_AUTHORIZATION", "HTTP_COOKIE"):
        assert secret not in seen and secret not in response.payload["request"]
    assert not any(key.startswith("wsgi.") for key in seen)
    assert response.payload["response"] == {
        "status": "200 OK",
        "headers": {"Content-Type": "text/plain"},
    }


def test_without_a_service_name_the_host_names_the_service(middleware):
    with record_notifications() as recorded:
        call(middleware(), environ())
        call(middleware(), environ(HTTP_HOST="nova:8774"))
    names = [n.payload["request"]["HTTP_X_SERVICE_NAME"] for n in recorded.notifications]
    assert names == ["api.example:8774"] * 2 + ["nova:8774"] * 2


def test_an_application_error_is_announced_and_raised_on(middleware):
    def broken(environ, start_response):
        raise ValueError("no such flavor")

    with record_notifications() as recorded, pytest.raises(ValueError, match="no such flavor"):
        call(middleware(broken), environ("POST"))
    request, response = recorded.notifications
    assert request.event_type == response.event_type.replace("response", "request")
    assert "response" not in response.payload
    assert response.payload["exception"]["value"] == "ValueError('no such flavor')"
    assert any("broken" in line for line in response.payload["exception"]["traceback"])


def test_ignored_methods_pass_through_unannounced_and_unchanged(middleware):
    app = middleware(ignore_req_list="get, Head")
    env = environ("HEAD")
    with record_notifications() as recorded:
        assert call(app, env)[0] == "200 OK"
        assert call(app, environ("GET"))[0] == "200 OK"
        call(app, environ("DELETE"))
    assert [n.payload["request"]["REQUEST_METHOD"] for n in recorded.notifications] == [
        "DELETE",
        "DELETE",
    ]
    assert "HTTP_X_SERVICE_NAME" not in env


def test_a_body_that_starts_the_response_lazily_still_gets_its_status(middleware):
    closed = []

    class Body:
        def __init__(self, start_response):
            self._start = start_response

        def __iter__(self):
            self._start("201 Created", [("Location", "/servers/1")])
            yield b"made"
            yield b" it"

        def close(self):
            closed.append(True)

    with record_notifications() as recorded:
        status, _headers, body = call(middleware(lambda env, start: Body(start)), environ("POST"))
    assert (status, body) == ("201 Created", b"made it")
    assert closed == [True]
    assert recorded.notifications[-1].payload["response"]["status"] == "201 Created"


def test_a_notification_that_cannot_be_sent_never_fails_the_request(middleware, caplog):
    app = middleware()

    def refuse(*args, **kwargs):
        raise RuntimeError("broker away")

    app.notifier.info = refuse
    with caplog.at_level(logging.ERROR, "rpcframe.notify.middleware"):
        assert call(app, environ())[2] == b"hello"
    assert "could not send the http.request notification" in caplog.text
    assert "could not send the http.response notification" in caplog.text


def test_the_notifications_travel_as_messagingv2_to_the_notification_topics(conf, transport, topic):
    conf.set_override("driver", ["messagingv2"], group="oslo_messaging_notifications")
    conf.set_override("topics", [topic], group="oslo_messaging_notifications")
    app = RequestNotifier(hello, conf, url="fake://", publisher_id="api")
    call(app, environ())
    for event_type in ("http.request", "http.response"):
        envelope = json.loads(take(transport, topic))
        message = json.loads(envelope["oslo.message"])
        assert (message["event_type"], message["publisher_id"]) == (event_type, "api")


def test_the_paste_factory_merges_global_and_local_settings(monkeypatch):
    built = []
    monkeypatch.setattr(
        RequestNotifier, "__init__", lambda self, app, conf=None, **s: built.append((app, conf, s))
    )
    make = RequestNotifier.factory({"here": "/etc/nova", "service_name": "x"}, service_name="nova")
    assert isinstance(make(hello), RequestNotifier)
    ((app, conf, settings),) = built
    assert app is hello and conf is None
    assert settings == {"here": "/etc/nova", "service_name": "nova"}


def test_without_a_conf_it_uses_the_global_one(monkeypatch):
    seen = []
    monkeypatch.setattr(
        "rpcframe.notify.middleware.get_notification_transport",
        lambda conf, url: seen.append((conf, url)) or object(),
    )
    monkeypatch.setattr("rpcframe.notify.middleware.Notifier", lambda *a, **k: object())
    RequestNotifier(hello, url="fake://")
    assert seen == [(cfg.CONF, "fake://")]


def test_it_is_built_and_configured_as_oslo_messagings_is():
    from oslo_messaging.notify import middleware as oslo_middleware

    theirs = oslo_middleware.RequestNotifier
    for name in ("factory", "environ_to_dict"):
        ours_params = inspect.signature(getattr(RequestNotifier, name)).parameters
        assert list(ours_params) == list(inspect.signature(getattr(theirs, name)).parameters)
    assert next(iter(inspect.signature(RequestNotifier).parameters)) == "app"
