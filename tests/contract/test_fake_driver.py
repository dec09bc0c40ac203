"""The driver contract suite on the in-memory fake driver."""

from rpcframe import green
from rpcframe.testing.contract import DriverContract


class TestFakeDriver(DriverContract):
    # Strict: the contract is what production does; the lenient default only
    # differs in handing objects over beside the body (tests/unit/test_fake_modes.py).
    url = "fake://?strict=true"


if green.patched():  # python -m tests.patched (tox -e eventlet)

    class TestFakeDriverOnTheEventletExecutor(TestFakeDriver):
        """The suite again, servers and listeners on green threads."""

        executor = "eventlet"
