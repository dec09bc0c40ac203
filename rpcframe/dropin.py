"""The import alias: ``import oslo_messaging`` gives rpcframe.

``import rpcframe as oslo_messaging`` is enough for code that names only
oslo.messaging's public API. A project whose code (or whose unit tests)
imports ``oslo_messaging`` by name, including the submodules and the few
private modules other projects' tests reach into, calls :func:`install`
once, before anything imports ``oslo_messaging``::

    import rpcframe.dropin
    rpcframe.dropin.install()

    import oslo_messaging                       # this is rpcframe
    from oslo_messaging.notify import _impl_test  # rpcframe.notify._impl_test

After that, ``oslo_messaging`` and every ``oslo_messaging.X`` are the very
module objects ``rpcframe`` and ``rpcframe.X``: ``mock.patch`` on either name
patches the same object. A submodule rpcframe does not have raises
``ModuleNotFoundError`` naming both names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType

__all__ = ["install", "installed", "uninstall"]

_lock = threading.Lock()


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``alias`` and ``alias.X`` to ``target`` and ``target.X``."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target

    def _target_name(self, fullname: str) -> str | None:
        if fullname != self.alias and not fullname.startswith(self.alias + "."):
            return None
        return self.target + fullname[len(self.alias) :]

    def find_spec(self, fullname, path=None, target=None):
        target_name = self._target_name(fullname)
        if target_name is None:
            return None
        try:
            module = importlib.import_module(target_name)
        except ModuleNotFoundError as exc:
            if exc.name != target_name:
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: {self.target} has no {target_name!r}",
                name=fullname,
            ) from None
        spec = importlib.machinery.ModuleSpec(
            fullname, self, is_package=hasattr(module, "__path__")
        )
        spec.loader_state = module
        return spec

    def create_module(self, spec):
        return spec.loader_state

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its own name. The import machinery has put
        # the alias's spec on it; it stays there, because an import that
        # finds the module already in sys.modules loads whatever spec the
        # module carries, and its own would execute it a second time.
        pass


def installed(alias: str = "oslo_messaging") -> AliasFinder | None:
    """The finder currently aliasing ``alias``, if any."""
    for finder in sys.meta_path:
        if isinstance(finder, AliasFinder) and finder.alias == alias:
            return finder
    return None


def install(alias: str = "oslo_messaging", target: str = "rpcframe") -> AliasFinder:
    """Make ``import <alias>[.X]`` import ``<target>[.X]``; safe to call twice.

    :raises RuntimeError: the real ``alias`` package is already imported in
        this process, so two copies would be in use at once.
    """
    with _lock:
        finder = installed(alias)
        if finder is not None:
            if finder.target != target:
                raise RuntimeError(f"{alias} is already an alias of {finder.target}")
            return finder
        already = sys.modules.get(alias)
        if already is not None and already.__name__ != target:
            raise RuntimeError(
                f"the real {alias} is already imported; install the alias before "
                f"anything imports {alias}"
            )
        finder = AliasFinder(alias, target)
        sys.meta_path.insert(0, finder)
        return finder


def uninstall(alias: str = "oslo_messaging") -> None:
    """Remove the alias and forget the modules imported through it."""
    with _lock:
        finder = installed(alias)
        if finder is None:
            return
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if finder._target_name(n) is not None]:
            del sys.modules[name]
