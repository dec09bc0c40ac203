"""What a ZeroMQ node is built from: its :class:`Settings`, read from the options.

Drivers whose settings are equal share one node (one listening socket and one
connection per peer process); :mod:`.node` and :mod:`.peers` both read them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rpcframe.drivers.zmq.security import Curve

__all__ = ["Settings"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a node is built from; drivers with equal settings share a node."""

    bind_address: str
    host: str
    min_port: int
    max_port: int
    port_retries: int
    static_binds: tuple[str, ...]
    linger: float
    heartbeat_interval: float
    heartbeat_timeout: float
    connect_timeout: float
    ack_timeout: float
    copy_window: float  # how long a sender may send a copy of a message
    curve: Curve | None
    matchmaker_key: tuple[Any, ...]
