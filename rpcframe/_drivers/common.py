"""Compatibility only: ``oslo_messaging._drivers.common`` names other projects' tests use.

The remote-error codec is :mod:`rpcframe.wire.remote_errors`; ``ConfigOptsProxy`` reads
a driver's options with the transport URL's query overriding them, as the
drivers do (:func:`rpcframe.drivers.base.driver_options`).
"""

from __future__ import annotations

import collections.abc
from typing import Any

from oslo_config import cfg

from rpcframe import wire

__all__ = ["ConfigOptsProxy", "deserialize_remote_exception", "serialize_remote_exception"]


def serialize_remote_exception(failure_info: Any, log_failure: bool = True) -> str:
    """oslo's spelling of :func:`rpcframe.wire.remote_errors.serialize_remote_exception`."""
    return wire.serialize_remote_exception(failure_info)


def deserialize_remote_exception(data: str, allowed_remote_exmods: Any) -> BaseException:
    """oslo's spelling of :func:`rpcframe.wire.remote_errors.deserialize_remote_exception`."""
    return wire.deserialize_remote_exception(data, allowed_remote_exmods)


class ConfigOptsProxy(collections.abc.Mapping):
    """``conf``, with the options of ``group`` overridden by the URL's query.

    An unknown query key raises ``cfg.NoSuchOptError`` and a value of the
    wrong type ``ValueError``, both when the proxy is built.
    """

    def __init__(self, conf: cfg.ConfigOpts, url: Any, group: str) -> None:
        self._conf = conf
        self._url = url
        self._group = group
        section = self.GroupAttrProxy(conf, group, getattr(conf, group), url)
        for name in url.query:
            getattr(section, name)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._conf, name)
        if name == self._group and isinstance(value, self._conf.GroupAttr):
            return self.GroupAttrProxy(self._conf, name, value, self._url)
        return value

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __contains__(self, name: object) -> bool:
        return name in self._conf

    def __iter__(self) -> Any:
        return iter(self._conf)

    def __len__(self) -> int:
        return len(self._conf)

    class GroupAttrProxy(collections.abc.Mapping):
        """One group's options, the URL's query winning."""

        def __init__(self, conf: cfg.ConfigOpts, group_name: str, group: Any, url: Any) -> None:
            self._conf = conf
            self._group_name = group_name
            self._group = group
            self._url = url

        def __getattr__(self, name: str) -> Any:
            value = getattr(self._group, name)
            raw = self._url.query.get(name)
            if raw is None:
                return value
            opt = self._conf._get_opt_info(name, self._group_name)["opt"]
            return opt.type(raw)

        def __getitem__(self, name: str) -> Any:
            return self.__getattr__(name)

        def __contains__(self, name: object) -> bool:
            return name in self._group

        def __iter__(self) -> Any:
            return iter(self._group)

        def __len__(self) -> int:
            return len(self._group)
