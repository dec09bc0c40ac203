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
* No WebOb needed: it is plain WSGI, and response headers are sent as a
  mapping (where a header repeats, its last value; looked up in any case).
  Called with a WebOb request instead of ``(environ, start_response)``, as
  oslo's (a ``webob.dec.wsgify`` middleware) may be, it answers with a WebOb
  response; :meth:`~RequestNotifier.process_request` and
  :meth:`~RequestNotifier.process_response` take WebOb-style objects (a
  request with ``environ`` and ``host``, a response with ``status`` and
  ``headers``), as oslo's do.

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
import traceback as _traceback
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

    # -- oslo's middleware methods: a request and a response, errors logged -------------

    def process_request(self, request: Any) -> None:
        """Announce ``request`` (anything with ``environ`` and ``host``) as ``http.request``."""
        request.environ["HTTP_X_SERVICE_NAME"] = self.service_name or request.host
        self._notify("http.request", {"request": self.environ_to_dict(request.environ)})

    def process_response(
        self, request: Any, response: Any, exception: Any = None, traceback: Any = None
    ) -> None:
        """Announce the answer to ``request`` (or what it raised) as ``http.response``."""
        payload: dict[str, Any] = {"request": self.environ_to_dict(request.environ)}
        if response:
            payload["response"] = {
                "status": response.status,
                "headers": _Headers((k, v) for k, v in response.headers.items() if _shown(k)),
            }
        if exception is not None:
            payload["exception"] = {
                "value": repr(exception),
                "traceback": _traceback.format_tb(traceback),
            }
        self._notify("http.response", payload)

    # -- WSGI --------------------------------------------------------------------------

    def __call__(
        self, environ: Any, start_response: StartResponse | None = None
    ) -> Iterable[bytes]:
        if start_response is None:
            # A WebOb request, as oslo's wsgify-decorated middleware accepts one.
            return environ.get_response(self)
        if str(environ.get("REQUEST_METHOD", "")).upper() in self.ignore_req_list:
            return self.application(environ, start_response)
        request = _Request(environ)
        self.process_request(request)
        answer: dict[str, Any] = {}

        def remember(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            answer["status"], answer["headers"] = status, headers
            return start_response(status, headers, *exc_info)

        try:
            body = _started(self.application(environ, remember), answer)
        except Exception as exc:
            self.process_response(request, None, exc, exc.__traceback__)
            raise
        response = _Response(answer["status"], answer["headers"]) if "status" in answer else None
        self.process_response(request, response)
        return body

    def _notify(self, event_type: str, payload: dict[str, Any]) -> None:
        try:
            self.notifier.info({}, event_type, payload)
        except Exception:
            LOG.exception("could not send the %s notification; the request goes on", event_type)


class _Request:
    """What process_request reads of a WSGI request, shaped as WebOb's."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    @property
    def host(self) -> str:
        return _host(self.environ)


class _Response:
    """What process_response reads of a WSGI response, shaped as WebOb's."""

    def __init__(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.headers = _Headers(headers)


class _Headers(dict):
    """Response headers as sent (their own case), looked up in any case, as WebOb's."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(items)
        self._names = {name.lower(): name for name in self}

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(self._names.get(name.lower(), name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if name in self else default


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
