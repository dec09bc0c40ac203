"""rpcframe's call extensions on the wire: announced calls, streams, cancellation.

Everything here travels under one key, ``_rpcframe``, that oslo.messaging
ignores, and only when the caller asked for it; a plain call carries none of it.

Request (caller to server)::

    "_rpcframe": {"announce": 0.05}                       # call_async: tell me who runs
                                                          # it, if it runs that long
    "_rpcframe": {"announce": true, "stream": {"window": 64}}   # a streamed call

``announce`` is true (at once) or a number of seconds: a call that ends
sooner needs no announcement (there is nothing left to cancel), so the
caller pays for one only when the call is long enough to be worth cancelling.

Server to caller, on the caller's inbox, as replies with ``ending`` false::

    "_rpcframe": {"started": {"control": "<inbox>", "id": "<control id>",
                              "server": "<host>"}}       # the call is running here
    "result": <chunk>, "_rpcframe": {"seq": N}           # chunk N of a stream (from 0)

and the last reply of a stream (``ending`` true) says how many chunks it had:
``"_rpcframe": {"end": N}`` (with ``failure`` set if the generator raised).

Caller to server, as replies on the server's inbox addressed to the control id::

    "_rpcframe": {"credit": N}    # chunks below N were consumed; send up to N + window
    "_rpcframe": {"resume": N}    # chunks from N did not arrive; send them again
    "_rpcframe": {"cancel": true} # stop: the caller no longer wants the result

A server that does not know the key (oslo.messaging) never announces a call
and answers a stream request with a plain reply, which the caller turns into
a clear :class:`~rpcframe.exceptions.StreamNotSupported` error.
"""

from __future__ import annotations

from typing import Any

from rpcframe import exceptions
from rpcframe.wire.replies import encode_reply

__all__ = [
    "KEY",
    "MAX_WINDOW",
    "CallOptions",
    "annotation",
    "encode_control",
    "parse_call_options",
]

KEY = "_rpcframe"
#: The largest stream window a server accepts: chunks sent and not yet consumed.
MAX_WINDOW = 4096


#: The longest delay before an announcement that a request may ask for.
MAX_ANNOUNCE_AFTER = 60.0


class CallOptions:
    """What a request asked of the server beyond a plain call."""

    __slots__ = ("announce", "window")

    def __init__(self, announce: bool | float = False, window: int | None = None) -> None:
        #: False, True (announce at once) or seconds to wait before announcing.
        self.announce = announce
        #: Chunks the server may have sent and the caller not yet consumed; None: no stream.
        self.window = window

    @property
    def announce_after(self) -> float | None:
        """Seconds before the server announces the call (0: at once), or None: never."""
        if self.announce is False:
            return None
        if self.announce is True:
            return 0.0
        return float(self.announce)

    @property
    def streams(self) -> bool:
        return self.window is not None

    def to_wire(self) -> dict[str, Any]:
        value: dict[str, Any] = {"announce": self.announce}
        if self.window is not None:
            value["stream"] = {"window": self.window}
        return value


def parse_call_options(message: dict[str, Any]) -> CallOptions | None:
    """Read a request's ``_rpcframe`` key; None when it has none.

    Raises MalformedMessage naming what is wrong with it.
    """
    value = message.get(KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise exceptions.MalformedMessage(f"{KEY!r} must be an object, got {type(value).__name__}")
    announce = value.get("announce", False)
    if not isinstance(announce, bool) and not (
        isinstance(announce, (int, float)) and 0 <= announce <= MAX_ANNOUNCE_AFTER
    ):
        raise exceptions.MalformedMessage(
            f"{KEY}.announce must be true, false or seconds from 0 to {MAX_ANNOUNCE_AFTER:g}, "
            f"got {announce!r}"
        )
    window = None
    stream = value.get("stream")
    if stream is not None:
        window = stream.get("window") if isinstance(stream, dict) else None
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
            raise exceptions.MalformedMessage(
                f"{KEY}.stream.window must be an integer from 1 to {MAX_WINDOW}, got {window!r}"
            )
    return CallOptions(announce, window)


def encode_control(control_id: str, **fields: Any) -> bytes:
    """A message from a caller to the server running its call (credit, resume, cancel)."""
    return encode_reply(control_id, None, None, ending=False, extra={KEY: fields})


def annotation(reply_message: dict[str, Any]) -> dict[str, Any] | None:
    """The ``_rpcframe`` object of a reply or control message, or None."""
    value = reply_message.get(KEY)
    return value if isinstance(value, dict) else None
