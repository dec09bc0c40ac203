"""What escapes the RabbitMQ driver: one table from backend exceptions to rpcframe's."""

from __future__ import annotations

import ssl

import amqp.exceptions
import pytest
from oslo_config import cfg

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp import errors
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.transport import TransportURL


@pytest.mark.parametrize(
    ("backend", "ours"),
    [
        (amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login refused"), "AuthenticationError"),
        (amqp.exceptions.ConnectionForced("CONNECTION_FORCED - closed"), "TransportBroken"),
        (amqp.exceptions.PreconditionFailed("PRECONDITION_FAILED"), "TransportBroken"),
        (amqp.exceptions.RecoverableConnectionError("Socket closed"), "TransportBroken"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "AuthenticationError"),
        (ssl.SSLError(1, "wrong version number"), "TransportBroken"),
        (ConnectionResetError(104, "Connection reset by peer"), "TransportBroken"),
        (TimeoutError("timed out"), "TransportBroken"),
        (OSError(113, "No route to host"), "TransportBroken"),
        (EOFError(), "TransportBroken"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_each_backend_exception_has_one_rpcframe_counterpart(backend, ours):
    translated = errors.translate(backend, "doing something")
    assert type(translated).__name__ == ours
    assert isinstance(translated, exceptions.TransportDriverError)
    assert str(translated) == "doing something"


def test_a_certificate_that_failed_verification_is_described_by_host_and_reason():
    failure = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED]")
    failure.verify_message = "self-signed certificate"
    text = errors.refusal(failure, "rmq1:5671", "nova", "/")
    assert text.startswith(
        "the TLS certificate of RabbitMQ at rmq1:5671 failed verification: self-signed certificate"
    )
    assert "ssl_ca_file" in text


def test_what_escapes_a_mapped_block_is_rpcframe_s_with_the_backend_s_as_cause():
    cause = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(exceptions.TransportBroken, match="opening the lock: .*refused") as info:
        with errors.mapped("opening the lock"):
            raise cause
    assert info.value.__cause__ is cause


def test_a_mapped_block_lets_rpcframe_and_programming_errors_through():
    with pytest.raises(exceptions.MessagingTimeout), errors.mapped("waiting"):
        raise exceptions.MessagingTimeout("late")
    with pytest.raises(KeyError), errors.mapped("looking up"):
        raise KeyError("x")


def test_the_closed_error_says_the_program_closed_it():
    closed = errors.closed("listener")
    assert isinstance(closed, exceptions.TransportClosed)
    assert not isinstance(closed, exceptions.TransportBroken)
    assert str(closed) == "the RabbitMQ listener is closed"


def test_a_closed_driver_refuses_to_send_or_listen_with_transport_closed():
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    driver = RabbitDriver(conf, TransportURL.parse(conf, "rabbit://guest:guest@127.0.0.1:1/"))
    driver.close()
    with pytest.raises(exceptions.TransportClosed):
        driver.send(base.Address("openstack", "topic"), b"{}")
    with pytest.raises(exceptions.TransportClosed):
        driver.listen([base.Address("openstack", "topic")])
