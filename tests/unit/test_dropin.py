"""The import alias: ``import oslo_messaging`` gives rpcframe.

Each test runs in a fresh interpreter: the alias changes what a process
imports, and oslo.messaging itself is installed beside rpcframe here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_oslo_messaging_and_its_submodules_are_rpcframes():
    done = run(
        """
        import rpcframe.dropin
        rpcframe.dropin.install()
        import oslo_messaging
        from oslo_messaging.rpc import client
        from oslo_messaging.notify import _impl_test
        import rpcframe, rpcframe.rpc.client, rpcframe.notify._impl_test
        assert oslo_messaging is rpcframe
        assert client is rpcframe.rpc.client
        assert _impl_test.NOTIFICATIONS is rpcframe.notify.drivers.NOTIFICATIONS
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_patching_the_oslo_name_patches_rpcframe():
    done = run(
        """
        from unittest import mock
        import rpcframe.dropin
        rpcframe.dropin.install()
        import rpcframe.transport
        with mock.patch("oslo_messaging.transport.get_rpc_transport") as patched:
            assert rpcframe.transport.get_rpc_transport is patched
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_a_submodule_rpcframe_lacks_names_both_modules():
    done = run(
        """
        import rpcframe.dropin
        rpcframe.dropin.install()
        try:
            import oslo_messaging._drivers.impl_kafka
        except ModuleNotFoundError as exc:
            print(exc)
        """
    )
    assert "oslo_messaging._drivers.impl_kafka" in done.stdout, done.stderr
    assert "rpcframe._drivers.impl_kafka" in done.stdout


def test_installing_twice_is_harmless_and_uninstall_forgets_the_alias():
    done = run(
        """
        import sys
        import rpcframe.dropin
        first = rpcframe.dropin.install()
        assert rpcframe.dropin.install() is first
        import oslo_messaging
        rpcframe.dropin.uninstall()
        assert "oslo_messaging" not in sys.modules
        assert rpcframe.dropin.installed() is None
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.filterwarnings("ignore")
def test_the_alias_is_refused_once_the_real_oslo_messaging_is_imported():
    pytest.importorskip("oslo_messaging")
    done = run(
        """
        import warnings
        warnings.simplefilter("ignore")
        import oslo_messaging
        import rpcframe.dropin
        try:
            rpcframe.dropin.install()
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert "already imported" in done.stdout, done.stderr
