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
