"""The driver contract suite on the in-memory fake driver."""

from rpcframe.testing.contract import DriverContract


class TestFakeDriver(DriverContract):
    url = "fake://"
