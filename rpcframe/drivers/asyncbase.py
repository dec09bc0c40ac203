"""The asyncio driver interface: what :mod:`rpcframe.aio` needs of a transport.

It mirrors :mod:`rpcframe.drivers.base` with coroutines where the thread
interface blocks, and shares everything else with it: :class:`~rpcframe.
drivers.base.Address`, :class:`~rpcframe.drivers.base.Capabilities`,
:class:`~rpcframe.drivers.base.IncomingMessage` (``ack`` and ``requeue``
never block: they write, or schedule a write, on the event loop) and the
driver's options. The bodies are the same bytes the thread drivers carry,
so an asyncio peer and a threaded one talk to each other on the same broker.

Async drivers are found through the ``rpcframe.aio_drivers`` entry point,
named by the URL's scheme as the thread drivers are; every method runs on
the event loop that built the driver.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpcframe.drivers.base import Address, Capabilities, IncomingMessage
from rpcframe.url import TransportURL

__all__ = ["AsyncDriver", "AsyncInbox", "AsyncListener"]


class AsyncListener(abc.ABC):
    """A subscription to one or more addresses, read by one task at a time."""

    @abc.abstractmethod
    async def poll(self, timeout: float | None = None) -> IncomingMessage | None:
        """The next message, or None after ``timeout`` seconds or once closed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving; a ``poll`` waiting returns None. Safe to call twice.

        Messages delivered and not yet polled go back to their queues. It
        does not wait: what the backend must still be told (a consumer to
        cancel, a private queue to delete) goes on in the background, and
        :meth:`wait_closed` waits for it.
        """

    async def wait_closed(self) -> None:  # noqa: B027 - nothing to wait for by default
        """Return once the backend has let go of what :meth:`close` released."""


class AsyncInbox(AsyncListener):
    """A private queue for replies; :attr:`address` is where to send them."""

    address: Address


class AsyncDriver(abc.ABC):
    """A transport's connection to its backend, on an event loop.

    :param conf: the ConfigOpts the driver reads its options from.
    :param url: the parsed transport URL.
    """

    capabilities: Capabilities = Capabilities()

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL) -> None:
        self.conf = conf
        self.url = url

    @abc.abstractmethod
    async def send(
        self,
        address: Address,
        body: bytes,
        *,
        expiry: float | None = None,
        mandatory: bool = False,
        retry: int | None = None,
        timeout: float | None = None,
        confirm: bool = True,
        **more: Any,
    ) -> None:
        """Send ``body`` to ``address``; as :meth:`rpcframe.drivers.base.Driver.send`."""

    @abc.abstractmethod
    async def listen(
        self, addresses: Sequence[Address], *, pool: str | None = None
    ) -> AsyncListener:
        """Subscribe to ``addresses``; as :meth:`rpcframe.drivers.base.Driver.listen`."""

    @abc.abstractmethod
    async def open_inbox(self) -> AsyncInbox:
        """A private reply queue with a unique address."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every listener and the connection. Safe to call twice."""
