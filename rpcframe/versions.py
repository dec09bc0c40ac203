"""RPC API version strings: parsing and the compatibility rule.

A version is ``"MAJOR.MINOR"`` or ``"MAJOR.MINOR.REVISION"``. A request for
version V can be served by an implementation of version I when the majors are
equal and V's (minor, revision) is not above I's: the rule oslo.messaging uses
for ``version_cap``, ``can_send_version`` and endpoint matching.
"""

from __future__ import annotations

import functools

__all__ = ["is_compatible", "parse_version"]


@functools.lru_cache(maxsize=256)
def parse_version(version: str) -> tuple[int, int, int]:
    """Return ``(major, minor, revision)``; raise ValueError naming the bad string."""
    if not isinstance(version, str):
        raise ValueError(f"version must be a string like '1.0', got {version!r}")
    parts = version.split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(
            f"version must be 'MAJOR.MINOR' or 'MAJOR.MINOR.REVISION' with integers, "
            f"got {version!r}"
        )
    major, minor, *rest = (int(p) for p in parts)
    return major, minor, rest[0] if rest else 0


def is_compatible(implemented: str | None, requested: str | None) -> bool:
    """Whether a request for ``requested`` may be served by ``implemented``.

    ``implemented=None`` accepts everything (no cap); ``requested=None`` is then
    refused by any concrete implementation, as in oslo.messaging.
    """
    if implemented is None:
        return True
    if requested is None:
        return False
    imp = parse_version(implemented)
    req = parse_version(requested)
    return req[0] == imp[0] and req[1:] <= imp[1:]
