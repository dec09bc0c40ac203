"""Compatibility only: the oslo.messaging ``_drivers`` modules other projects' tests import.

rpcframe's drivers live in :mod:`rpcframe.drivers`; these modules give a few
of oslo.messaging's private names (the fake driver, the remote-error codec,
the URL-aware option proxy) over rpcframe's implementation, for unit tests
that reach into them through :mod:`rpcframe.dropin`.
"""
