"""Fixtures that create rpcframe objects and always tear them down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import fixtures
from oslo_config import cfg

from rpcframe.rpc.server import RPCServer, get_rpc_server
from rpcframe.target import Target
from rpcframe.transport import Transport, get_rpc_transport

__all__ = ["RPCServerFixture", "TransportFixture"]


class TransportFixture(fixtures.Fixture):
    """An RPC transport on ``url`` (default ``fake://``); ``cleanup()`` on teardown.

    Every ``fake://`` transport in a process shares one in-memory broker
    while any of them is open, so a client and a server may each have one.
    """

    def __init__(
        self, conf: cfg.ConfigOpts | None = None, url: str = "fake://", **kwargs: Any
    ) -> None:
        super().__init__()
        if conf is None:
            conf = cfg.ConfigOpts()
            conf([])
        self.conf = conf
        self.url = url
        self._kwargs = kwargs
        self.transport: Transport | None = None

    def _setUp(self) -> None:
        self.transport = get_rpc_transport(self.conf, self.url, **self._kwargs)
        self.addCleanup(self.transport.cleanup)


class RPCServerFixture(fixtures.Fixture):
    """A started RPC server; stopped and waited for on teardown.

    :param transport: the transport to serve on.
    :param target: the server's target (topic and server).
    :param endpoints: endpoint objects.
    :param kwargs: passed to :func:`~rpcframe.get_rpc_server`.
    """

    def __init__(
        self, transport: Transport, target: Target, endpoints: Sequence[Any], **kwargs: Any
    ) -> None:
        super().__init__()
        self._args = (transport, target, endpoints)
        self._kwargs = kwargs
        self.server: RPCServer | None = None

    def _setUp(self) -> None:
        self.server = get_rpc_server(*self._args, **self._kwargs)
        self.server.start()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.server.wait()
