"""Fixtures for unit tests: a private ConfigOpts and fake:// transports."""

from __future__ import annotations

import uuid

import pytest
from oslo_config import cfg

import rpcframe


@pytest.fixture
def conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


@pytest.fixture
def transport(conf):
    # Strict: these tests are about what production does (tests/unit/test_fake_modes.py
    # covers the lenient default).
    transport = rpcframe.get_rpc_transport(conf, "fake://?strict=true")
    yield transport
    transport.cleanup()


@pytest.fixture
def topic():
    return f"unit_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def serve(transport, topic):
    """Start servers on the test's topic; they are stopped at teardown."""
    started = []

    def start(*endpoints, server="server", **kwargs):
        srv = rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server=server), list(endpoints), **kwargs
        )
        srv.start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
        srv.wait()


@pytest.fixture
def client(transport, topic):
    return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
