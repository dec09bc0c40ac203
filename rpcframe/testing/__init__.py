"""Helpers for testing services built on rpcframe, and for testing drivers.

* :class:`ConfFixture` - set rpcframe options in unit tests (oslo-compatible).
* :class:`TransportFixture` - an RPC transport, cleaned up afterwards.
* :class:`RPCServerFixture` - a running RPC server, stopped and waited for
  afterwards, even when the test fails.
* :mod:`rpcframe.testing.contract` - the conformance suite every driver passes.

All fixtures work with testtools' ``useFixture`` and as context managers.
"""

from rpcframe.conffixture import ConfFixture
from rpcframe.testing.fixtures import RPCServerFixture, TransportFixture

__all__ = ["ConfFixture", "RPCServerFixture", "TransportFixture"]
