"""Transport URLs: ``driver://[user:pass@]host:port[,hostN:portN]/virtual_host?query``.

A :class:`TransportURL` names a driver (its scheme), the hosts to reach, a
virtual host and driver options that override the configuration file. It is
parsed here, below the drivers, which receive it; :mod:`rpcframe.transport`
re-exports it under oslo.messaging's import path.

Credentials never appear in ``repr()``, logs or error messages
(:meth:`TransportURL.masked`, :func:`mask_url`); ``str()`` gives the full URL
back, as oslo.messaging does, for code that rebuilds it.
"""

from __future__ import annotations

from urllib import parse

from oslo_config import cfg

from rpcframe import exceptions, options

__all__ = ["TransportHost", "TransportURL", "mask_url"]


class TransportHost:
    """One host of a transport URL."""

    def __init__(
        self,
        hostname: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password

    def __hash__(self) -> int:
        return hash((self.hostname, self.port, self.username, self.password))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and vars(self) == vars(other)

    def __repr__(self) -> str:
        shown = []
        for name in ("hostname", "port", "username"):
            value = getattr(self, name)
            if value:
                shown.append(f"{name}={value!r}")
        if self.password:
            shown.append("password='****'")
        return "<TransportHost " + ", ".join(shown) + ">"


class TransportURL:
    """A parsed transport URL (see the module documentation for the form).

    :param conf: the ConfigOpts the transport will use.
    :param transport: the driver name, e.g. ``"rabbit"`` or ``"fake"``.
    :param virtual_host: the virtual host, e.g. ``"/"``.
    :param hosts: a list of :class:`TransportHost`.
    :param query: driver options that override the configuration file.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        transport: str | None = None,
        virtual_host: str | None = None,
        hosts: list[TransportHost] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        self.conf = conf
        options.register_core(conf)
        self.transport = transport
        self.virtual_host = virtual_host
        self.hosts = [] if hosts is None else hosts
        self.query = {} if query is None else query

    def __hash__(self) -> int:
        return hash((tuple(self.hosts), self.transport, self.virtual_host))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TransportURL)
            and self.transport == other.transport
            and self.virtual_host == other.virtual_host
            and self.hosts == other.hosts
        )

    def _format(self, mask: bool) -> str:
        netlocs = []
        for host in self.hosts:
            netloc = ""
            if host.username is not None or host.password is not None:
                if host.username is not None:
                    netloc += parse.quote(host.username, "")
                if host.password is not None:
                    netloc += ":" + ("****" if mask else parse.quote(host.password, ""))
                netloc += "@"
            if host.hostname:
                netloc += f"[{host.hostname}]" if ":" in host.hostname else host.hostname
            if host.port is not None:
                netloc += f":{host.port}"
            netlocs.append(netloc)
        url = f"{self.transport}://{','.join(netlocs)}/"
        if self.virtual_host:
            url += parse.quote(self.virtual_host)
        if self.query:
            url += "?" + parse.urlencode(self.query, doseq=True)
        return url

    def __str__(self) -> str:
        return self._format(mask=False)

    def masked(self) -> str:
        """The URL with every password replaced by ``****``: safe to log."""
        return self._format(mask=True)

    def __repr__(self) -> str:
        return f"<TransportURL {self.masked()}>"

    @classmethod
    def parse(cls, conf: cfg.ConfigOpts, url: str | None = None) -> TransportURL:
        """Parse ``url`` (default: ``conf.transport_url``).

        Raises InvalidTransportURL saying what is wrong: not a string, no
        scheme, a bad port. Credentials are never part of the message.
        """
        options.register_core(conf)
        url = url or conf.transport_url
        if not isinstance(url, str):
            raise exceptions.InvalidTransportURL(
                url, f"a transport URL must be a string, got {type(url).__name__}"
            )
        try:
            parsed = parse.urlparse(url)
        except ValueError as exc:  # urllib's "Invalid IPv6 URL", say
            raise exceptions.InvalidTransportURL(
                mask_url(url), f"cannot parse transport URL {mask_url(url)!r}: {exc}"
            ) from None
        if not parsed.scheme:
            raise exceptions.InvalidTransportURL(
                mask_url(url),
                f'No scheme specified in "{mask_url(url)}": a transport URL names its '
                "driver (expected driver://[user:pass@]host:port/virtual_host)",
            )
        query: dict[str, str] = {}
        if parsed.query:
            for key, values in parse.parse_qs(parsed.query, keep_blank_values=True).items():
                query[key] = ",".join(values)
        virtual_host = None
        if parsed.path.startswith("/"):
            virtual_host = parse.unquote(parsed.path[1:])
        hosts = []
        for netloc in parsed.netloc.split(","):
            if not netloc:
                continue
            username = password = None
            hostport = netloc
            if "@" in netloc:
                credentials, hostport = netloc.rsplit("@", 1)
                if ":" in credentials:
                    username, password = credentials.split(":", 1)
                    password = parse.unquote(password)
                else:
                    username = credentials
                username = parse.unquote(username)
            hostname, port = _split_host_port(hostport, url)
            hosts.append(TransportHost(hostname, port, username, password))
        return cls(conf, parsed.scheme, virtual_host, hosts, query)


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``****``, even if it does not parse.

    For logging a URL string before (or instead of) parsing it; a parsed
    URL has :meth:`TransportURL.masked`.
    """
    try:
        scheme, rest = url.split("://", 1)
    except ValueError:
        return url.rsplit("@", maxsplit=1)[-1]
    netloc, sep, tail = rest.partition("/")
    masked = []
    for host in netloc.split(","):
        credentials, at, hostport = host.rpartition("@")
        if at and ":" in credentials:
            user = credentials.split(":", 1)[0]
            masked.append(f"{user}:****@{hostport}")
        else:
            masked.append(host)
    return f"{scheme}://{','.join(masked)}{sep}{tail}"


def _split_host_port(hostport: str, url: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        hostname, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        hostname, port_text = hostport.split(":")
    else:
        hostname, port_text = hostport, ""
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise exceptions.InvalidTransportURL(
                mask_url(url), f"bad port {port_text!r} in transport URL {mask_url(url)!r}"
            )
        port = int(port_text)
    return hostname or None, port
