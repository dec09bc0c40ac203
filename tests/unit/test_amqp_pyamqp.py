"""The py-amqp adapter: what the driver relies on is checked, and its absence is a clear error."""

from __future__ import annotations

import amqp
import amqp.channel
import amqp.connection
import amqp.method_framing
import amqp.serialization
import amqp.transport
import pytest

from rpcframe.drivers.amqp import pyamqp
from tests.conftest import run_python


def test_the_installed_py_amqp_has_everything_the_driver_relies_on():
    assert pyamqp.missing() == []
    pyamqp.check()


@pytest.mark.parametrize(
    ("owner", "name", "reported"),
    [
        (amqp.channel.Channel, "_do_revive", "Channel._do_revive"),
        (amqp.connection.Connection, "Channel", "Connection.Channel"),
        (amqp.connection.Connection, "bytes_recv", "Connection.bytes_recv"),
        (amqp.connection.Connection, "on_inbound_frame", "Connection.on_inbound_frame"),
        (amqp.connection.Connection, "frame_writer", "Connection.frame_writer"),
        (amqp.transport.TCPTransport, "_read", "TCPTransport._read"),
        (amqp.serialization, "loads", "serialization.loads(format, buf, offset)"),
        (amqp.method_framing, "frame_writer", "method_framing.frame_writer"),
    ],
)
def test_a_relied_on_name_that_is_gone_fails_the_check(monkeypatch, owner, name, reported):
    monkeypatch.delattr(owner, name)
    assert any(what.startswith(reported) for what in pyamqp.missing())
    with pytest.raises(pyamqp.UnsupportedPyAmqp):
        pyamqp.check()


def test_a_hook_py_amqp_no_longer_calls_counts_as_missing(monkeypatch):
    def blocking_read(self, timeout=None):
        return self.transport.read_frame()

    monkeypatch.setattr(amqp.connection.Connection, "blocking_read", blocking_read)
    assert pyamqp.missing() == ["Connection.on_inbound_frame"]


def test_a_renamed_parameter_counts_as_missing(monkeypatch):
    def _read(self, size, initial=False):
        data, self._read_buffer = self._read_buffer + self._quick_recv(size), b""
        return data

    monkeypatch.setattr(amqp.transport.SSLTransport, "_read", _read)
    assert pyamqp.missing() == ["SSLTransport._read(n, initial)"]


def test_the_error_names_the_version_what_is_missing_and_the_supported_range(monkeypatch):
    monkeypatch.delattr(amqp.channel.Channel, "_do_revive")
    monkeypatch.setattr(amqp, "__version__", "9.9.9")
    with pytest.raises(ImportError) as info:
        pyamqp.check()
    message = str(info.value)
    assert "py-amqp 9.9.9" in message
    assert "Channel._do_revive" in message
    assert f"amqp{pyamqp.SUPPORTED}" in message
    assert info.value.missing == ["Channel._do_revive"]


def test_a_driver_on_an_unsupported_py_amqp_fails_to_load_with_driver_load_failure():
    code = (
        "import amqp.channel\n"
        "del amqp.channel.Channel._do_revive\n"
        "import rpcframe\n"
        "from oslo_config import cfg\n"
        "try:\n"
        "    rpcframe.get_rpc_transport(cfg.ConfigOpts(), 'rabbit://guest:guest@127.0.0.1:1/')\n"
        "except rpcframe.DriverLoadFailure as exc:\n"
        "    print(exc)\n"
    )
    done = run_python(code)
    assert "lacks what rpcframe's RabbitMQ driver relies on: Channel._do_revive" in done.stdout, (
        done.stderr
    )
