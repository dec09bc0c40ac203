"""A WSGI middleware that announces every HTTP request and its response.

:class:`RequestNotifier` stands where ``oslo_messaging.notify.middleware.
RequestNotifier`` stands in a paste pipeline, and sends the same
notifications: ``http.request`` before the request is passed on, and
``http.response`` once the application has answered (or raised), both at
``INFO`` priority with an empty context. The payload is
``{"request": <environ>}``, plus ``"response": {"status", "headers"}`` or,
when the application raised, ``"exception": {"value", "traceback"}``; the
exception is raised on unchanged.

Settings (paste ``[filter:...]`` options, or keyword arguments):

* ``publisher_id``: the notifications' publisher (default: the program's name);
* ``service_name``: set as ``HTTP_X_SERVICE_NAME`` in the environ before the
  request goes on (default: the request's host);
* ``ignore_req_list``: comma-separated HTTP methods that are passed on
  without notifications;
* ``url``: the notification transport URL (default: the configuration's).

What differs from oslo.messaging, on purpose:

* No credentials leave the process. oslo.messaging drops only
  ``HTTP_X_AUTH_TOKEN``; here every environ key and response header whose
  name says it holds a secret (:func:`rpcframe.redaction.is_secret_key`:
  ``HTTP_AUTHORIZATION``, ``HTTP_X_SUBJECT_TOKEN``...) is left out, and so
  are cookies (``HTTP_COOKIE``, ``Set-Cookie``).
* Plain WSGI, no WebOb: response headers are sent as a mapping (where a
  header repeats, its last value).

A notification that cannot be sent is logged and the request goes on: the
middleware never fails a request of its own.

The configuration: built with ``conf``, the middleware uses that
``ConfigOpts``. ``paste.deploy`` has no way to pass one, so :meth:`factory`
(and a middleware built without ``conf``) uses oslo.config's global
``cfg.CONF``, which a service that loads its paste pipeline has already
parsed. This is the one place rpcframe reads it.
"""

from __future__ import annotations

import logging
import os.path
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from oslo_config import cfg

from rpcframe.notify.notifier import Notifier, get_notification_transport
from rpcframe.redaction import is_secret_key

__all__ = ["RequestNotifier"]

LOG = logging.getLogger(__name__)

#: Names (upper-cased) left out besides the secret-looking ones.
_LEFT_OUT = frozenset({"HTTP_COOKIE", "SET-COOKIE"})

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _shown(name: str) -> bool:
    return name.upper() not in _LEFT_OUT and not is_secret_key(name)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


class RequestNotifier:
    """Send ``http.request`` and ``http.response`` notifications around an application."""

    @classmethod
    def factory(cls, global_conf: Mapping[str, Any], **local_conf: Any) -> Callable[[WSGIApp], Any]:
        """The ``paste.filter_factory`` (``use = egg:...`` or ``paste.filter_factory = ...``)."""
        settings = {**global_conf, **local_conf}

        def make(app: WSGIApp) -> RequestNotifier:
            return cls(app, **settings)

        return make

    def __init__(self, app: WSGIApp, conf: cfg.ConfigOpts | None = None, **settings: Any) -> None:
        self.application = app
        conf = cfg.CONF if conf is None else conf
        self.notifier = Notifier(
            get_notification_transport(conf, settings.get("url")),
            publisher_id=settings.get("publisher_id") or os.path.basename(sys.argv[0]),
        )
        self.service_name = settings.get("service_name")
        self.ignore_req_list = {
            method.strip().upper()
            for method in str(settings.get("ignore_req_list", "")).split(",")
            if method.strip()
        }

    @staticmethod
    def environ_to_dict(environ: Mapping[str, Any]) -> dict[str, Any]:
        """The CGI variables of ``environ`` (upper-case keys; PEP 3333), without secrets."""
        return {k: _plain(v) for k, v in environ.items() if k.isupper() and _shown(k)}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if str(environ.get("REQUEST_METHOD", "")).upper() in self.ignore_req_list:
            return self.application(environ, start_response)
        environ["HTTP_X_SERVICE_NAME"] = self.service_name or _host(environ)
        self._notify("http.request", {"request": self.environ_to_dict(environ)})
        answer: dict[str, Any] = {}

        def remember(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer["status"], answer["headers"] = status, headers
            return start_response(status, headers, *exc_info)

        try:
            body = _started(self.application(environ, remember), answer)
        except Exception as exc:
            self._notify(
                "http.response",
                {
                    "request": self.environ_to_dict(environ),
                    "exception": {
                        "value": repr(exc),
                        "traceback": traceback.format_tb(exc.__traceback__),
                    },
                },
            )
            raise
        payload: dict[str, Any] = {"request": self.environ_to_dict(environ)}
        if "status" in answer:
            payload["response"] = {
                "status": answer["status"],
                "headers": {k: v for k, v in answer["headers"] if _shown(k)},
            }
        self._notify("http.response", payload)
        return body

    def _notify(self, event_type: str, payload: dict[str, Any]) -> None:
        try:
            self.notifier.info({}, event_type, payload)
        except Exception:
            LOG.exception("could not send the %s notification; the request goes on", event_type)


def _host(environ: Mapping[str, Any]) -> str:
    """The request's host, as WSGI gives it (``HTTP_HOST``, else server name and port)."""
    host = environ.get("HTTP_HOST")
    if host:
        return str(host)
    name, port = environ.get("SERVER_NAME", ""), str(environ.get("SERVER_PORT", ""))
    default = {"http": "80", "https": "443"}.get(environ.get("wsgi.url_scheme", "http"))
    return f"{name}:{port}" if port and port != default else str(name)


def _started(body: Iterable[bytes], answer: dict[str, Any]) -> Iterable[bytes]:
    """``body``, with its first chunk read if that is what calls ``start_response``.

    A WSGI application may call ``start_response`` only when its body is
    first iterated; the status is needed before the response notification.
    """
    if "status" in answer:
        return body
    chunks = iter(body)
    try:
        first = next(chunks)
    except StopIteration:
        _close(body)
        return []
    except BaseException:
        _close(body)
        raise
    return _Chained(first, chunks, body)


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _Chained:
    """The first chunk again, then the rest; ``close()`` reaches the application's body."""

    def __init__(self, first: bytes, rest: Iterator[bytes], body: Iterable[bytes]) -> None:
        self._first: list[bytes] = [first]
        self._rest = rest
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._first
        self._first = []
        yield from self._rest

    def close(self) -> None:
        _close(self._body)
