"""The driver contract suite on the in-memory fake driver."""

from rpcframe import green
from rpcframe.testing.contract import DriverContract
from rpcframe.testing.contract_aio import AsyncDriverContract


class TestFakeDriver(DriverContract):
    # Strict: the contract is what production does; the lenient default only
    # differs in handing objects over beside the body (tests/unit/test_fake_modes.py).
    url = "fake://?strict=true"


class TestFakeDriverWithConcurrentPollers(TestFakeDriver):
    """The suite again with the concurrent_poll capability: every idle worker polls."""

    url = "fake://?strict=true&concurrent_poll=true"


if not green.patched():  # asyncio drivers do not run in a monkey-patched process

    class TestAsyncFakeDriver(AsyncDriverContract):
        url = "fake://?strict=true"


if green.patched():  # python -m tests.patched (tox -e eventlet)

    class TestFakeDriverOnTheEventletExecutor(TestFakeDriver):
        """The suite again, servers and listeners on green threads."""

        executor = "eventlet"
