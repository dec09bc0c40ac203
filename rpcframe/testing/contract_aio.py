"""The driver interface cases on an asyncio driver (:mod:`rpcframe.drivers.asyncbase`).

An asyncio driver passes the same raw-interface cases as a thread driver
(:mod:`rpcframe.testing.contract_driver`) when a subclass of
:class:`AsyncDriverContract` naming its URL passes under pytest::

    from rpcframe.testing.contract_aio import AsyncDriverContract

    class TestMyAsyncDriver(AsyncDriverContract):
        url = "mydriver://localhost/"

The driver runs on an event loop of its own, in a thread of the suite's;
each case calls it through :class:`LoopView`, which only carries every call
over to that loop and waits for its result (a ``poll`` waits there, as a
task would). Acknowledging and requeueing happen on the case's thread, as
they may from a worker thread of an asyncio server. The asyncio driver is
the ``rpcframe.aio_drivers`` entry point of the URL's scheme; cases that
need a capability it does not declare are skipped, saying which.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from oslo_config import cfg

from rpcframe import options
from rpcframe import transport as msg_transport
from rpcframe.drivers import asyncbase, base
from rpcframe.testing.contract_driver import DriverInterfaceContract
from rpcframe.testing.contract_notify import WAIT
from rpcframe.url import TransportURL

__all__ = ["AsyncDriverContract", "LoopView"]

_T = TypeVar("_T")


class _Loop:
    """An event loop running in a daemon thread until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="contract-aio-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Awaitable[_T], timeout: float | None = WAIT * 3) -> _T:
        """Run ``coro`` on the loop and wait for its result (at most ``timeout`` s)."""

        async def wrapped() -> _T:
            return await coro

        future = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"the asyncio driver did not answer in {timeout} s") from None

    def call(self, function: Callable[[], _T]) -> _T:
        """Run a plain ``function`` on the loop and wait for its result."""

        async def here() -> _T:
            return function()

        return self.run(here())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


class _ListenerView:
    """A listener of the asyncio driver, called from the case's thread."""

    def __init__(self, loop: _Loop, listener: asyncbase.AsyncListener) -> None:
        self._loop = loop
        self._listener = listener
        if hasattr(listener, "address"):
            self.address = listener.address

    def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        return self._loop.run(self._listener.poll(timeout), None)

    def close(self) -> None:
        """Close the listener, and wait until the backend let go of it (``wait_closed``)."""
        self._loop.call(self._listener.close)
        self._loop.run(self._listener.wait_closed())


class LoopView:
    """An :class:`~rpcframe.drivers.asyncbase.AsyncDriver` with the thread driver's methods.

    Each method runs the driver's own on its loop and waits for it.
    """

    def __init__(self, loop: _Loop, driver: asyncbase.AsyncDriver) -> None:
        self._loop = loop
        self._driver = driver
        self.capabilities = driver.capabilities

    def send(self, address: base.Address, body: bytes, **kwargs: Any) -> None:
        self._loop.run(self._driver.send(address, body, **kwargs))

    def listen(self, addresses: Sequence[base.Address], *, pool: str | None = None) -> Any:
        return _ListenerView(self._loop, self._loop.run(self._driver.listen(addresses, pool=pool)))

    def open_inbox(self) -> Any:
        return _ListenerView(self._loop, self._loop.run(self._driver.open_inbox()))

    def close(self) -> None:
        self._loop.run(self._driver.close())


def load_async_driver(conf: cfg.ConfigOpts, url: str) -> asyncbase.AsyncDriver:
    """The asyncio driver ``url`` names, as :func:`rpcframe.aio.get_rpc_transport` loads it."""
    from rpcframe.aio.transport import DRIVER_NAMESPACE

    options.register_core(conf)
    driver = msg_transport._load_driver(
        conf, TransportURL.parse(conf, url), DRIVER_NAMESPACE, asyncbase.AsyncDriver
    )
    assert isinstance(driver, asyncbase.AsyncDriver)
    return driver


class AsyncDriverContract(DriverInterfaceContract):
    """Subclass with ``url = "scheme://..."`` to run the interface cases on an asyncio driver.

    ``url`` is required, as for :class:`~rpcframe.testing.contract.DriverContract`.
    """

    url: str

    @pytest.fixture
    def topic(self) -> str:
        return f"contract_{uuid.uuid4().hex[:12]}"

    @pytest.fixture(autouse=True)
    def loop(self) -> Iterator[_Loop]:
        self._loop = running = _Loop()
        yield running
        running.stop()

    @pytest.fixture
    def driver(self, conf: cfg.ConfigOpts, loop: _Loop) -> Iterator[LoopView]:
        view = self.new_driver(conf)
        yield view
        view.close()

    def new_driver(self, conf: Any) -> LoopView:
        loop = self._loop
        return LoopView(loop, loop.call(lambda: load_async_driver(conf, self.url)))

    def require(self, has_capabilities: Any, capability: str) -> None:
        if not getattr(has_capabilities.capabilities, capability):
            pytest.skip(f"driver lacks the {capability!r} capability")
