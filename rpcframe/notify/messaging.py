"""The ``messaging`` and ``messagingv2`` notifier drivers: notifications over a transport.

Each notification goes to ``<topic>.<priority>`` (priority lower case) for
every topic of the Notifier, in ``control_exchange``, where notification
listeners (rpcframe's or oslo.messaging's) receive it. ``send`` returns
once the transport owns the message (broker-confirmed on RabbitMQ); there is
no promise that a listener will ever read it. On a transport without the
``durable_notifications`` capability (one without a broker to keep them), a
notification sent while no listener runs is lost: the driver says so, once,
when it is built. Like a cast, a send waits at
most ``rpc_response_timeout`` seconds for the transport to take the message.

``messagingv2`` sends the oslo.messaging 2.0 envelope, which every current
consumer expects. ``messaging`` sends the bare 1.0 message, for old
consumers only. Both add ``_sender`` (see :mod:`rpcframe.identity`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rpcframe.notify import drivers
from rpcframe.target import Target

__all__ = ["MessagingDriver", "MessagingV2Driver"]

LOG = logging.getLogger(__name__)


class MessagingDriver(drivers.Driver):
    """Sends notifications without the envelope (message format 1.0)."""

    def __init__(self, conf: Any, topics: Any, transport: Any, version: float = 1.0) -> None:
        super().__init__(conf, topics, transport)
        self.version = version
        capabilities = getattr(transport, "capabilities", None)
        if capabilities is not None and capabilities.durable_notifications is False:
            LOG.warning(
                "the %r transport keeps no notifications for listeners that are not "
                "running: notifications to %s sent while none listens are lost",
                transport.url.transport,
                ", ".join(self.topics) or "no topic",
            )

    def notify(self, ctxt: Any, message: Mapping[str, Any], priority: str, retry: Any) -> None:
        """Send to every topic; raise the first failure after trying them all."""
        level = priority.lower()
        failure: BaseException | None = None
        for topic in self.topics:
            target = Target(topic=f"{topic}.{level}")
            try:
                self.transport._send_notification(
                    target, ctxt, message, version=self.version, retry=retry
                )
            except Exception as exc:  # noqa: BLE001 - the other topics still get it; raised below
                LOG.error(
                    "Could not send %r notification to %s: %s",
                    message.get("event_type"),
                    topic,
                    exc,
                )
                failure = failure or exc
        if failure is not None:
            raise failure

    async def anotify(
        self, ctxt: Any, message: Mapping[str, Any], priority: str, retry: Any
    ) -> None:
        """:meth:`notify` on an asyncio transport (:mod:`rpcframe.aio.notify`)."""
        level = priority.lower()
        failure: BaseException | None = None
        for topic in self.topics:
            target = Target(topic=f"{topic}.{level}")
            try:
                await self.transport._send_notification(
                    target, ctxt, message, version=self.version, retry=retry
                )
            except Exception as exc:  # noqa: BLE001 - the other topics still get it; raised below
                LOG.error(
                    "Could not send %r notification to %s: %s",
                    message.get("event_type"),
                    topic,
                    exc,
                )
                failure = failure or exc
        if failure is not None:
            raise failure


class MessagingV2Driver(MessagingDriver):
    """Sends notifications in the 2.0 envelope (the format to use)."""

    def __init__(self, conf: Any, **kwargs: Any) -> None:
        super().__init__(conf, version=2.0, **kwargs)
