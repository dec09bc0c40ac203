"""Every public rpcframe exception, in one tree.

All of them derive from :class:`MessagingException`, so ``except
rpcframe.MessagingException`` catches anything the library raises on purpose.
The names, bases and constructor arguments are oslo.messaging's, so code that
catches oslo's exceptions keeps working; the other modules re-export them under
the paths oslo users import from (``rpcframe.rpc.client.RemoteError`` and so
on)::

    MessagingException
    ├── MessagingTimeout                  a deadline passed (call, send, stop)
    ├── MessageDeliveryFailure            retries exhausted while sending
    ├── MessageUndeliverable              a mandatory message had no route
    ├── InvalidTarget (ValueError)        a Target unfit for what was asked
    ├── InvalidTransportURL               a transport URL that cannot be used
    ├── DriverLoadFailure                 no driver for the URL's scheme
    ├── ConfigurationError                an option or URL parameter is wrong
    ├── TransportDriverError              a driver failed; the backend's error is __cause__
    │   ├── TransportClosed               used after close() or cleanup(): your code closed it
    │   ├── TransportBroken               the backend broke it (connection lost, refused)
    │   └── AuthenticationError           the backend refused the credentials
    ├── MalformedMessage                  a body that is not a valid message
    ├── MessageStateError                 a message acked or requeued twice
    ├── ClientSendError                   a client could not hand a request over
    ├── RPCVersionCapError                version above the client's version_cap
    ├── RemoteError                       an endpoint raised a non-allowed exception
    ├── CallCancelled                     the call was cancelled (by its caller, or a limit)
    ├── StreamNotSupported                the server answered a stream with a plain reply
    ├── InvalidNotification (ValueError)  a notification that cannot be sent as asked
    │   └── ValidationError               its payload does not match the event's schema
    └── MessagingServerError
        ├── ExecutorLoadFailure
        ├── ServerListenError
        ├── TaskTimeout                   start/stop/wait gave up waiting (timeout=)
        └── RPCDispatcherError
            ├── NoSuchMethod (AttributeError)
            └── UnsupportedVersion

:class:`ExpectedException` is not part of the tree: as in oslo.messaging it is
a plain ``Exception`` that endpoints raise to mark an error as expected. The
notification endpoint controls are not errors either; an endpoint raises them
to tell its listener what to do with the message::

    NotificationControl
    ├── Requeue                           put the message back for redelivery
    ├── Drop                              acknowledge it; no further endpoint sees it
    └── HaltListener                      settle it, then stop this listener

Errors carry fields (``target``, ``method``, ``version``, ``url``), not only
text; their messages never contain credentials.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "AuthenticationError",
    "CallCancelled",
    "ClientSendError",
    "ConfigurationError",
    "DriverLoadFailure",
    "ExecutorLoadFailure",
    "Drop",
    "ExpectedException",
    "HaltListener",
    "InvalidNotification",
    "InvalidTarget",
    "InvalidTransportURL",
    "MalformedMessage",
    "MessageStateError",
    "MessageDeliveryFailure",
    "MessageUndeliverable",
    "MessagingException",
    "MessagingServerError",
    "MessagingTimeout",
    "NoSuchMethod",
    "NotificationControl",
    "RPCDispatcherError",
    "RPCVersionCapError",
    "RemoteError",
    "Requeue",
    "ServerListenError",
    "StreamNotSupported",
    "TaskTimeout",
    "TransportBroken",
    "TransportClosed",
    "TransportDriverError",
    "UnsupportedVersion",
    "ValidationError",
]


class MessagingException(Exception):
    """Base class of every exception rpcframe raises."""


class MessagingTimeout(MessagingException):
    """A deadline passed: no reply to a call, or a send that could not finish.

    ``timeout`` is the number of seconds that were allowed, ``method`` and
    ``target`` say what was being waited for (when known).
    """

    def __init__(
        self,
        *args: Any,
        timeout: float | None = None,
        method: str | None = None,
        target: Any = None,
    ) -> None:
        super().__init__(*args)
        self.timeout = timeout
        self.method = method
        self.target = target


class MessageDeliveryFailure(MessagingException):
    """A message could not be sent after the retries that were asked for."""


class MessageUndeliverable(MessagingException):
    """A message sent with ``mandatory`` had no queue to go to.

    oslo.messaging derives this from ``Exception`` only; deriving it from
    :class:`MessagingException` is compatible (every ``except`` that caught it
    still does) and puts it in the one tree.
    """

    def __init__(
        self, exception: BaseException | None, exchange: str, routing_key: str, message: Any
    ) -> None:
        super().__init__(
            f"message to exchange {exchange!r} with routing key {routing_key!r} "
            "was not routed to any queue"
        )
        self.exception = exception
        self.exchange = exchange
        self.routing_key = routing_key
        self.message = message


class InvalidTarget(MessagingException, ValueError):
    """A Target does not fit what was asked of it (no topic, call with fanout...)."""

    def __init__(self, msg: str, target: Any) -> None:
        super().__init__(f"{msg}: {target}")
        self.target = target


class InvalidTransportURL(MessagingException):
    """A transport URL cannot be parsed or used. The URL is kept, masked."""

    def __init__(self, url: Any, msg: str) -> None:
        super().__init__(msg)
        self.url = url


class DriverLoadFailure(MessagingException):
    """No transport driver could be loaded for a URL's scheme."""

    def __init__(self, driver: str, ex: BaseException | str) -> None:
        super().__init__(f'Failed to load transport driver "{driver}": {ex}')
        self.driver = driver
        self.ex = ex


class ConfigurationError(MessagingException):
    """An option value or URL query parameter is not acceptable."""


class TransportDriverError(MessagingException):
    """A driver failed to do what was asked; the backend's error is ``__cause__``.

    oslo.messaging raises this one class for every driver failure; rpcframe
    raises one of its two subclasses, so that code can tell a mistake of its
    own (:class:`TransportClosed`) from a failure of the backend
    (:class:`TransportBroken`), while ``except TransportDriverError`` still
    catches both.
    """


class TransportClosed(TransportDriverError):
    """The transport, driver, listener or inbox was used after it was closed.

    The program closed it (``cleanup()``, ``close()``, ``stop()``); retrying
    on the same object cannot succeed. Like trio's ``ClosedResourceError``.
    """


class TransportBroken(TransportDriverError):
    """The backend failed: a connection lost for good, a declaration refused.

    Nothing the program did to the object caused it; the backend's own error
    is ``__cause__``. Like trio's ``BrokenResourceError``.
    """


class AuthenticationError(TransportDriverError):
    """The messaging backend refused the credentials. Retrying will not help."""


class MalformedMessage(MessagingException):
    """A message body that is not a valid rpcframe/oslo.messaging message.

    ``reason`` says what was wrong with it. For a request, ``msg_id`` and
    ``reply_q`` are set when they could be read, so the caller can be told.
    """

    def __init__(self, reason: str, msg_id: str | None = None, reply_q: str | None = None) -> None:
        super().__init__(f"malformed message: {reason}")
        self.reason = reason
        self.msg_id = msg_id
        self.reply_q = reply_q


class MessageStateError(MessagingException):
    """A received message was acknowledged or requeued a second time."""


class ClientSendError(MessagingException):
    """A client failed to hand a request to the transport."""

    def __init__(self, target: Any, ex: BaseException | str) -> None:
        super().__init__(f'Failed to send to target "{target}": {ex}')
        self.target = target
        self.ex = ex


class RPCVersionCapError(MessagingException):
    """A request's version is above the client's ``version_cap``."""

    def __init__(self, version: str | None, version_cap: str | None) -> None:
        super().__init__(
            f"Requested message version, {version} is incompatible.  It needs to be "
            "equal in major version and less than or equal in minor version as the "
            f"specified version cap {version_cap}."
        )
        self.version = version
        self.version_cap = version_cap


class RemoteError(MessagingException):
    """An endpoint raised an exception the caller may not rebuild.

    Only exceptions from builtins and from modules in the transport's
    ``allowed_remote_exmods`` are re-raised as themselves; any other arrives
    as a RemoteError carrying the remote class name, message and traceback.
    """

    def __init__(
        self, exc_type: str | None = None, value: Any = None, traceback: Any = None
    ) -> None:
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback
        super().__init__(f"Remote error: {exc_type} {value}\n{traceback}.")


class CallCancelled(MessagingException):
    """The call was cancelled: by its caller, or by the server's time limit.

    Raised to a nested call made from inside an endpoint whose own call was
    cancelled, and to a caller whose call a server ended at its
    ``rpc_max_call_seconds`` limit.
    """


class StreamNotSupported(MessagingException):
    """A stream was asked of a server that answered with a plain reply.

    An oslo.messaging server (or an endpoint method that is not a generator)
    answers :meth:`~rpcframe.RPCClient.stream` with one result; call it with
    :meth:`~rpcframe.RPCClient.call` instead.
    """


class InvalidNotification(MessagingException, ValueError):
    """A notification the notifier refuses to send: nothing was sent.

    ``event_type`` is the event it was for (when known); the message says
    what was wrong (an empty event type, an unknown priority, a payload JSON
    cannot hold).
    """

    def __init__(self, msg: str, event_type: Any = None) -> None:
        super().__init__(msg)
        self.event_type = event_type


class ValidationError(InvalidNotification):
    """A payload does not match the JSON Schema registered for its event type.

    ``path`` is where in the payload the first failure is (a tuple of keys
    and indexes; empty for the payload itself), ``reason`` what the schema
    required there.
    """

    def __init__(self, event_type: str, path: tuple[Any, ...], reason: str) -> None:
        where = "payload" + "".join(f"[{p!r}]" for p in path)
        super().__init__(
            f"{event_type!r} notification is not valid at {where}: {reason}", event_type
        )
        self.path = path
        self.reason = reason


class MessagingServerError(MessagingException):
    """Base class of the errors a MessageHandlingServer raises."""


class ExecutorLoadFailure(MessagingServerError):
    """The executor named for a server could not be loaded."""

    def __init__(self, executor: str, ex: BaseException | str) -> None:
        super().__init__(f'Failed to load executor "{executor}": {ex}')
        self.executor = executor
        self.ex = ex


class ServerListenError(MessagingServerError):
    """A server could not start listening on its target."""

    def __init__(self, target: Any, ex: BaseException | str) -> None:
        super().__init__(f'Failed to listen on target "{target}": {ex}')
        self.target = target
        self.ex = ex


class TaskTimeout(MessagingServerError):
    """A server's start(), stop() or wait() gave up waiting for its turn (its ``timeout``)."""


class RPCDispatcherError(MessagingServerError):
    """Base class of the errors the RPC dispatcher sends back to a caller."""


class NoSuchMethod(RPCDispatcherError, AttributeError):
    """No endpoint that matches the request's namespace and version has the method."""

    def __init__(self, method: str) -> None:
        super().__init__(f"Endpoint does not support RPC method {method}")
        self.method = method


class UnsupportedVersion(RPCDispatcherError):
    """No endpoint supports the request's namespace and version."""

    def __init__(self, version: str | None, method: str | None = None) -> None:
        msg = f"Endpoint does not support RPC version {version}"
        if method:
            msg = f"{msg}. Attempted method: {method}"
        super().__init__(msg)
        self.version = version
        self.method = method


class ExpectedException(Exception):
    """Raised by an endpoint (or ``expected_exceptions``) to mark an expected error.

    Creating it records the exception being handled; the server sends that
    original exception to the caller and logs it at debug level only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.exc_info = sys.exc_info()


class NotificationControl(Exception):
    """Base class of what a notification endpoint raises to settle its message."""


class Requeue(NotificationControl):
    """Put the message back for redelivery (acknowledged instead when the
    listener was built without ``allow_requeue``)."""


class Drop(NotificationControl):
    """Acknowledge the message now; endpoints after this one do not see it."""


class HaltListener(NotificationControl):
    """Stop the listener that is handling this message, cleanly.

    The message is acknowledged, or requeued with ``requeue=True`` (when the
    listener allows requeueing), before the listener stops taking messages.
    Messages other workers are handling finish as they would on ``stop()``.
    """

    def __init__(self, reason: str = "", requeue: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.requeue = requeue
