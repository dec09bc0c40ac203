"""CURVE: encryption and authentication of every connection, from key files.

When ``zmq_curve_server_key_file`` is set, every listening socket is a CURVE
server with that certificate's keys and every connection a CURVE client
that checks the server holds them; a peer's messages are accepted only if
its client public key is in ``zmq_curve_authorized_keys_dir`` (checked by
the ZAP handler, :meth:`Curve.authorize`, which the driver's I/O loop
answers). When it is not set, nothing is encrypted or authenticated: any
process that can reach a port can send to it.

Key files are zmq.auth certificates (``zmq.auth.create_certificates``); a
missing file, a public certificate where a secret one is needed or an empty
authorized directory is a ConfigurationError saying which.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from rpcframe import exceptions

__all__ = ["Curve", "ZAP_DOMAIN", "ZAP_ENDPOINT", "load_curve"]

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = "rpcframe"


def _load(option: str, path: str, secret: bool) -> tuple[bytes, bytes | None]:
    if not os.path.isfile(path):
        raise exceptions.ConfigurationError(f"{option}: no such key file {path!r}")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise exceptions.ConfigurationError(
            f"{option}: {path!r} is not a zmq.auth certificate: {exc}"
        ) from None
    if secret and not secret_key:
        raise exceptions.ConfigurationError(
            f"{option}: {path!r} holds no secret key (a public certificate); "
            "give the secret certificate (*.key_secret)"
        )
    return public, secret_key


@dataclasses.dataclass(frozen=True)
class Curve:
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes
    authorized: frozenset[bytes]  # z85 public keys
    describe: str

    def configure_server(self, sock: Any) -> None:
        sock.curve_server = True
        sock.curve_publickey = self.server_public
        sock.curve_secretkey = self.server_secret
        sock.zap_domain = ZAP_DOMAIN.encode()

    def configure_client(self, sock: Any) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.client_public
        sock.curve_secretkey = self.client_secret

    def authorize(self, request: list[bytes]) -> tuple[list[bytes], str | None]:
        """The ZAP reply to ``request``, and why it was refused (None: accepted)."""
        if len(request) < 6:
            return [], "malformed ZAP request"
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        credentials = request[6:]
        refused = None
        if version != b"1.0":
            refused = "unknown ZAP version"
        elif mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            refused = f"mechanism {mechanism.decode(errors='replace')} is not accepted"
        elif z85.encode(credentials[0]) not in self.authorized:
            refused = f"client key {z85.encode(credentials[0]).decode()} is not authorized"
        if refused is None:
            return [version, request_id, b"200", b"OK", b"", b""], None
        who = address.decode(errors="replace")
        return [version, request_id, b"400", refused.encode(), b"", b""], f"{who}: {refused}"


def load_curve(server_key_file: str, client_key_file: str, authorized_dir: str) -> Curve | None:
    """The CURVE settings the options describe, or None when CURVE is off."""
    if not server_key_file:
        if client_key_file or authorized_dir:
            raise exceptions.ConfigurationError(
                "zmq_curve_client_key_file and zmq_curve_authorized_keys_dir need "
                "zmq_curve_server_key_file"
            )
        return None
    if not zmq.has("curve"):
        raise exceptions.ConfigurationError("this libzmq was built without CURVE support")
    server_public, server_secret = _load("zmq_curve_server_key_file", server_key_file, True)
    if client_key_file:
        client_public, client_secret = _load("zmq_curve_client_key_file", client_key_file, True)
    else:
        client_public, client_secret = server_public, server_secret
    if not authorized_dir or not os.path.isdir(authorized_dir):
        raise exceptions.ConfigurationError(
            f"zmq_curve_authorized_keys_dir {authorized_dir!r} is not a directory; CURVE "
            "needs the public certificates of the clients to accept"
        )
    authorized = frozenset(zmq.auth.load_certificates(authorized_dir))
    if not authorized:
        raise exceptions.ConfigurationError(
            f"zmq_curve_authorized_keys_dir {authorized_dir!r} holds no certificate (*.key)"
        )
    assert server_secret is not None and client_secret is not None
    return Curve(
        server_public,
        server_secret,
        client_public,
        client_secret,
        authorized,
        f"CURVE ({server_key_file})",
    )
