"""CURVE on ZeroMQ: an authorized client is served, another key refused; threads and asyncio."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import uuid
from collections.abc import Iterator

import pytest
import zmq.auth
from oslo_config import cfg

import rpcframe
import rpcframe.aio
from rpcframe import exceptions
from rpcframe.testing.contract_rpc import _Endpoint

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path: pathlib.Path) -> dict[str, str]:
    """Key files: the servers' certificate, an authorized client and a stranger."""
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    paths = {}
    for name in ("server", "client", "stranger"):
        public, secret = zmq.auth.create_certificates(str(tmp_path), name)
        paths[name] = secret
        if name != "stranger":
            (authorized / pathlib.Path(public).name).write_bytes(pathlib.Path(public).read_bytes())
    paths["authorized"] = str(authorized)
    return paths


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: The server process's endpoint (static name service): the first node to listen takes it.
PORT = _free_port()


def _url(keys: dict[str, str], client_key: str) -> str:
    return (
        f"zmq://127.0.0.1:{PORT}/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
        f"&zmq_curve_server_key_file={keys['server']}&zmq_curve_client_key_file={client_key}"
        f"&zmq_curve_authorized_keys_dir={keys['authorized']}"
    )


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def _transport(keys: dict[str, str], client_key: str) -> rpcframe.Transport:
    return rpcframe.get_rpc_transport(_conf(), _url(keys, client_key))


@pytest.fixture
def served(keys: dict[str, str]) -> Iterator[str]:
    topic = f"curve_{uuid.uuid4().hex[:8]}"
    transport = _transport(keys, keys["client"])
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [_Endpoint("s")]
    )
    server.start()
    yield topic
    server.stop()
    server.wait()
    transport.cleanup()


def test_an_authorized_client_is_served_over_curve(keys, served):
    transport = _transport(keys, keys["client"])
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=served), timeout=10)
        assert client.call({}, "echo", value="secret") == "secret"
    finally:
        transport.cleanup()


def test_a_client_with_a_key_the_server_does_not_know_is_refused(keys, served):
    # A process of its own would hold only the stranger's key; in this one
    # it gets a node of its own because its options differ.
    transport = _transport(keys, keys["stranger"])
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=served), timeout=10)
        with pytest.raises(
            rpcframe.ClientSendError, match="refused this process's CURVE key"
        ) as info:
            client.cast({}, "record", value="intruder")
        assert isinstance(info.value.__cause__, exceptions.AuthenticationError)
    finally:
        transport.cleanup()


def test_a_missing_key_file_is_a_clear_error(keys, tmp_path):
    keys = dict(keys, server=str(tmp_path / "nowhere.key_secret"))
    with pytest.raises(rpcframe.MessagingException, match="no such key file"):
        _transport(keys, keys["client"])


def test_asyncio_clients_and_servers_speak_curve_and_a_strangers_key_is_refused(keys, served):
    """The event loop's node answers CURVE handshakes (ZAP) as the I/O thread's does."""

    async def main() -> None:
        good = rpcframe.aio.get_rpc_transport(_conf(), _url(keys, keys["client"]))
        stranger = rpcframe.aio.get_rpc_transport(_conf(), _url(keys, keys["stranger"]))
        topic = f"curve_aio_{uuid.uuid4().hex[:8]}"
        server = rpcframe.aio.get_rpc_server(
            good, rpcframe.Target(topic=topic, server="a"), [_Endpoint("a")]
        )
        await server.start()
        try:
            to_threads = rpcframe.aio.get_rpc_client(good, rpcframe.Target(topic=served))
            assert await to_threads.call({}, "echo", value="to threads") == "to threads"
            to_loop = rpcframe.aio.get_rpc_client(good, rpcframe.Target(topic=topic), timeout=10)
            assert await to_loop.call({}, "echo", value="to the loop") == "to the loop"
            intruder = rpcframe.aio.get_rpc_client(stranger, rpcframe.Target(topic=topic))
            with pytest.raises(
                rpcframe.ClientSendError, match="refused this process's CURVE key"
            ) as info:
                await intruder.cast({}, "record", value="intruder")
            assert isinstance(info.value.__cause__, exceptions.AuthenticationError)
        finally:
            await server.stop()
            await server.wait(timeout=10)
            await stranger.cleanup()
            await good.cleanup()

    asyncio.run(asyncio.wait_for(main(), 50))
