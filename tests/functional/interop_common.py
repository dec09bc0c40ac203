"""What both sides of the interop tests share: an endpoint and an exception.

Imports neither rpcframe nor oslo.messaging: each side adds its own
``target`` (and the library's Target class) to :class:`InteropEndpoint`.
"""

from __future__ import annotations

import threading
from typing import Any


class InteropError(Exception):
    """Raised by the test endpoints on both sides of the interop tests."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class InteropEndpoint:
    """The methods both libraries serve in the interop tests."""

    def __init__(self, name: str, expected: int = 1) -> None:
        self.name = name
        self.records: list[Any] = []
        self.lock = threading.Lock()
        self.expected = expected
        self.got = threading.Event()
        self.released = threading.Event()
        self.block_done = threading.Event()

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def fail_custom(self, ctxt: Any, code: int) -> None:
        raise InteropError(code, "custom failure")

    def record(self, ctxt: Any, value: Any) -> None:
        with self.lock:
            self.records.append(value)
            if len(self.records) >= self.expected:
                self.got.set()

    def recorded(self, ctxt: Any) -> list[Any]:
        with self.lock:
            return list(self.records)

    def block(self, ctxt: Any, seconds: float) -> bool:
        """Run until ``release`` is cast (True) or ``seconds`` pass (False)."""
        released = self.released.wait(seconds)
        self.block_done.set()
        return released

    def release(self, ctxt: Any) -> None:
        self.released.set()

    def block_finished(self, ctxt: Any, seconds: float) -> bool:
        """Whether a ``block`` call has returned, waiting up to ``seconds`` for one to."""
        return self.block_done.wait(seconds)
