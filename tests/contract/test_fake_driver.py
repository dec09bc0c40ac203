"""The driver contract suite on the in-memory fake driver."""

from rpcframe import green
from rpcframe.testing.contract import DriverContract


class TestFakeDriver(DriverContract):
    url = "fake://"


if green.patched():  # python -m tests.patched (tox -e eventlet)

    class TestFakeDriverOnTheEventletExecutor(TestFakeDriver):
        """The suite again, servers and listeners on green threads."""

        executor = "eventlet"
