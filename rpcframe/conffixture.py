"""ConfFixture: set rpcframe's options in a service's unit tests.

Drop-in for ``oslo_messaging.conffixture.ConfFixture``::

    self.messaging_conf = self.useFixture(rpcframe.conffixture.ConfFixture(cfg.CONF))
    self.messaging_conf.transport_url = "fake:/"

It registers every option rpcframe knows on the given ConfigOpts, offers
``transport_url`` and ``response_timeout`` as properties, accepts the old
``notification_driver`` / ``notification_transport_url`` /
``notification_topics`` names in ``set_override`` and ``clear_override``, and
undoes everything (``conf.reset()``) on cleanup. It works with testtools'
``useFixture``, with ``fixtures``, and as a context manager under pytest.
"""

from __future__ import annotations

import functools
from typing import Any

import fixtures
from oslo_config import cfg

from rpcframe import opts

__all__ = ["ConfFixture"]

_OLD_NOTIFICATION_NAMES = {
    "notification_driver": "driver",
    "notification_transport_url": "transport_url",
    "notification_topics": "topics",
}


class ConfFixture(fixtures.Fixture):
    """Tweak rpcframe's configuration options for unit testing.

    :param conf: the ConfigOpts the code under test uses.
    :param transport_url: if given, overrides ``transport_url``.
    """

    def __init__(self, conf: cfg.ConfigOpts, transport_url: str | None = None) -> None:
        super().__init__()
        self.conf = conf
        opts.register_all(conf)
        if transport_url is not None:
            self.transport_url = transport_url

    def _setUp(self) -> None:
        self._setup_decorator()
        self.addCleanup(self._teardown_decorator)
        self.addCleanup(self.conf.reset)

    def _setup_decorator(self) -> None:
        conf = self.conf
        if hasattr(conf.set_override, "wrapped"):
            return

        set_override, clear_override = conf.set_override, conf.clear_override

        @functools.wraps(set_override)
        def set_override_compat(name: str, override: Any, group: str | None = None) -> None:
            if name in _OLD_NOTIFICATION_NAMES:
                name, group = _OLD_NOTIFICATION_NAMES[name], opts.NOTIFICATIONS_GROUP
            set_override(name, override, group)

        @functools.wraps(clear_override)
        def clear_override_compat(name: str, group: str | None = None) -> None:
            if name in _OLD_NOTIFICATION_NAMES:
                name, group = _OLD_NOTIFICATION_NAMES[name], opts.NOTIFICATIONS_GROUP
            clear_override(name, group)

        set_override_compat.wrapped = set_override  # type: ignore[attr-defined]
        clear_override_compat.wrapped = clear_override  # type: ignore[attr-defined]
        conf.set_override = set_override_compat
        conf.clear_override = clear_override_compat

    def _teardown_decorator(self) -> None:
        conf = self.conf
        for name in ("set_override", "clear_override"):
            wrapped = getattr(getattr(conf, name), "wrapped", None)
            if wrapped is not None:
                setattr(conf, name, wrapped)

    @property
    def transport_url(self) -> str:
        """The transport URL."""
        return self.conf.transport_url

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        self.conf.set_override("transport_url", value)

    @property
    def response_timeout(self) -> int:
        """Default seconds to wait for a call's reply (``rpc_response_timeout``)."""
        return self.conf.rpc_response_timeout

    @response_timeout.setter
    def response_timeout(self, value: int) -> None:
        self.conf.set_override("rpc_response_timeout", value)
