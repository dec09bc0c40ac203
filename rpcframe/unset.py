"""The typed "not given: keep the current value" marker of ``prepare()`` methods.

``None`` is a value a caller may pass on purpose (``timeout=None``,
``publisher_id=None``), so ``RPCClient.prepare`` and ``Notifier.prepare`` tell
an argument left out from one set to None by :data:`UNSET`. An enum member,
so type checkers narrow ``x is not UNSET`` (as httpx's ``USE_CLIENT_DEFAULT``).
"""

from __future__ import annotations

import enum

__all__ = ["UNSET", "Unset"]


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset.UNSET
