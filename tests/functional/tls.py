"""A throw-away certificate authority and a TLS-terminating proxy for tests.

:func:`make_pki` writes a CA, a server certificate (for ``localhost`` only,
no IP address) and a client certificate into a directory. :class:`TlsProxy`
listens on a free loopback port, speaks TLS to clients (requiring a client
certificate from the CA) and relays the plain bytes to RabbitMQ. The test
starts and stops it, so the shared broker's configuration is never touched.
Each of its threads waits on a wake-up socket of its own, so that it also
runs on green threads in an eventlet-patched process (where two green
threads may not wait on one socket). :func:`proxy_process` runs one in a
process of its own, for tests that stop their own process for a while.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import selectors
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    dns: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def pki_in(directory: Path) -> Pki:
    """Where :func:`make_pki` writes (or wrote) its files in ``directory``."""
    return Pki(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
    )


def make_pki(directory: Path, ca_name: str = "rpcframe test CA") -> Pki:
    """A CA, a server certificate for ``localhost`` and a client certificate."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue(ca_key, _name(ca_name), ca_name, ca_key, ca=True)
    paths = pki_in(directory)
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for cert_path, key_path, subject, dns in (
        (paths.server_cert, paths.server_key, "localhost", ("localhost",)),
        (paths.client_cert, paths.client_key, "rpcframe-client", ()),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(ca_key, ca_cert.subject, subject, key, dns=dns)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
    return paths


class TlsProxy:
    """TLS on ``127.0.0.1:<port>``, relayed in plain to ``upstream``."""

    def __init__(self, pki: Pki, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
        self.context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wakers: list[socket.socket] = [self._wake_w]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.handshakes_failed = 0
        self.relayed = 0

    def __enter__(self) -> TlsProxy:
        self._spawn(self._accept, "tls-proxy-accept")
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            threads = list(self._threads)
            wakers = list(self._wakers)
        for waker in wakers:
            with contextlib.suppress(OSError):
                waker.send(b"x")
        for thread in threads:
            thread.join(10)
        self.listener.close()
        self._wake_r.close()
        for waker in wakers:
            waker.close()

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_r in ready:
                    return
                client, _ = self.listener.accept()
                self._spawn(self._relay, "tls-proxy-relay", client)

    def _relay(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            with self._lock:
                self.handshakes_failed += 1
            raw.close()
            return
        wake_r, wake_w = socket.socketpair()
        with self._lock:
            self.relayed += 1
            self._wakers.append(wake_w)
        plain = socket.create_connection(self.upstream, timeout=10)
        tls.settimeout(None)
        plain.settimeout(None)
        with tls, plain, wake_r, selectors.DefaultSelector() as selector:
            selector.register(tls, selectors.EVENT_READ)
            selector.register(plain, selectors.EVENT_READ)
            selector.register(wake_r, selectors.EVENT_READ)
            with contextlib.suppress(OSError):
                while True:
                    ready = {key.fileobj for key, _ in selector.select()}
                    if wake_r in ready:
                        return
                    if tls in ready:
                        data = tls.recv(65536)
                        while tls.pending():
                            data += tls.recv(tls.pending())
                        if not data:
                            return
                        plain.sendall(data)
                    if plain in ready:
                        data = plain.recv(65536)
                        if not data:
                            return
                        tls.sendall(data)


@contextlib.contextmanager
def proxy_process(pki: Pki, upstream: tuple[str, int]) -> Iterator[int]:
    """A :class:`TlsProxy` in a process of its own, until the block ends; yields its port.

    For a test that stops its own process for a while on purpose (an
    eventlet hub blocked by an endpoint): the proxy relays meanwhile.
    """
    from tests.conftest import child_process

    command = [sys.executable, "-m", "tests.functional.tls", str(pki.ca.parent)]
    with child_process([*command, *map(str, upstream)]) as proc:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            line = proc.stdout.readline() if selector.select(60) else ""
        assert line.strip().isdigit(), f"the TLS proxy did not start: {line!r}"
        yield int(line)


if __name__ == "__main__":
    # python -m tests.functional.tls PKI_DIRECTORY HOST PORT: relay until stdin closes.
    directory, host, port = sys.argv[1:4]
    with TlsProxy(pki_in(Path(directory)), (host, int(port))) as running:
        print(running.port, flush=True)
        sys.stdin.read()
