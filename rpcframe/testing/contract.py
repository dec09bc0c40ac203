"""The driver contract suite: what every rpcframe driver must do.

A driver passes when a subclass of :class:`DriverContract` naming its URL
passes under pytest::

    from rpcframe.testing.contract import DriverContract

    class TestMyDriver(DriverContract):
        url = "mydriver://localhost/"

The suite checks the raw driver interface of :mod:`rpcframe.drivers.base`
(:mod:`rpcframe.testing.contract_driver`), RPC through the whole stack
(:mod:`rpcframe.testing.contract_rpc`) and notifications through the whole
stack (:mod:`rpcframe.testing.contract_notify`), and call handles, streams,
cancellation and deadlines (:mod:`rpcframe.testing.contract_calls`); this
module holds the
fixtures they share. Tests that need a capability the driver does not
declare are skipped by capability, never by driver name. Every topic is
unique per test, so the suite can run against a shared broker.

Tests wait on events, never on sleeps; every wait has a timeout, so a broken
driver fails instead of hanging.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe.drivers import base
from rpcframe.testing.contract_calls import CallsContract
from rpcframe.testing.contract_driver import DriverInterfaceContract
from rpcframe.testing.contract_notify import WAIT, NotificationContract
from rpcframe.testing.contract_rpc import RemoteErrorForTests, RPCContract, _Endpoint

__all__ = ["DriverContract", "RemoteErrorForTests"]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class DriverContract(DriverInterfaceContract, RPCContract, NotificationContract, CallsContract):
    """Subclass with ``url = "scheme://..."`` to run the suite on a driver.

    ``url`` is required: a test class (``Test*``) without one is refused when
    it is defined, rather than silently testing some other driver.
    ``executor`` names the executor the suite's servers and listeners run on
    (None: the default, ``threading``); ``"eventlet"`` needs a monkey-patched
    process. Cases that need a capability the driver does not declare
    (:class:`~rpcframe.drivers.base.Capabilities`) are skipped, saying which.
    """

    url: str
    executor: str | None = None

    # -- fixtures (and ``conf``, from DriverInterfaceContract) -------------------

    @pytest.fixture
    def transport(self, conf: cfg.ConfigOpts) -> Iterator[rpcframe.Transport]:
        transport = rpcframe.get_rpc_transport(
            conf, self.url, allowed_remote_exmods=[RemoteErrorForTests.__module__]
        )
        yield transport
        transport.cleanup()

    @pytest.fixture
    def driver(self, conf: cfg.ConfigOpts) -> Iterator[base.Driver]:
        """The driver on its own, on the same URL (and so the same queues) as ``transport``."""
        with self.raw_driver(conf) as driver:
            yield driver

    @pytest.fixture
    def topic(self) -> str:
        return _unique("contract")

    @pytest.fixture
    def servers(self, transport: rpcframe.Transport) -> Iterator[Any]:
        started: list[Any] = []

        def start(
            topic: str,
            name: str = "server",
            endpoint: Any = None,
            pool_size: int | None = None,
            **kwargs: Any,
        ) -> Any:
            endpoint = endpoint or _Endpoint(name)
            kwargs.setdefault("executor", self.executor)
            server = rpcframe.get_rpc_server(
                transport, rpcframe.Target(topic=topic, server=name), [endpoint], **kwargs
            )
            server.start(override_pool_size=pool_size)
            started.append((server, endpoint))
            return endpoint

        yield start
        for server, endpoint in started:
            endpoint.release.set()
            server.stop()
            server.wait()

    def client(
        self, transport: rpcframe.Transport, topic: str, **kwargs: Any
    ) -> rpcframe.RPCClient:
        kwargs.setdefault("timeout", WAIT)
        return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), **kwargs)

    def require(self, has_capabilities: base.Driver | rpcframe.Transport, capability: str) -> None:
        if not getattr(has_capabilities.capabilities, capability):
            pytest.skip(f"driver lacks the {capability!r} capability")
