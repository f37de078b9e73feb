"""Which requests the sandbox answers: those addressed to the loopback address and port it serves, or to a name
the person running it allowed.

A page on another site can have the browser send requests to 127.0.0.1 by re-pointing its own name there (DNS
rebinding); such requests still carry that site's name in ``Host`` (and in ``Origin`` on a POST), so checking both
against the loopback names keeps the sandbox's data and actions to the person at this machine. Only a path is
answered as the request target: an absolute URL's authority would replace ``Host`` (RFC 9112, 3.2.2).

A reverse proxy, a forwarded port or a port-mapped container reaches the sandbox under another name or port; those
are allowed by name (``--allow-host NAME[:PORT]``, ``NORBIT_SANDBOX_ALLOWED_HOSTS``), never by pattern.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from ..exceptions import ConfigurationError

__all__ = [
    "allowed_hosts",
    "allowed_origins",
    "host_allowed",
    "origin_allowed",
    "origin_form",
    "parse_allowed_host",
    "parse_allowed_hosts",
    "refusal_text",
]

_NAMES = ("127.0.0.1", "localhost", "[::1]")
_OWS = " \t"  # optional whitespace around a field value, not part of it (RFC 9110, 5.5)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_IPV6 = re.compile(r"[0-9a-f:.]+")


def _field(value: str) -> str | None:
    """A header value without the whitespace around it, in lower case; None when it is not ASCII (no other
    letters fold onto the ASCII names: the Kelvin sign's lower case is "k")."""
    value = value.strip(_OWS)
    return value.lower() if value.isascii() else None


def parse_allowed_host(value: str) -> str:
    """``NAME`` or ``NAME:PORT`` (a DNS name, an IPv4 address, an IPv6 address in brackets when a port follows),
    in the lower-case form a ``Host`` header has; :class:`ConfigurationError` for anything else."""
    text = value.strip(_OWS)
    problem = ConfigurationError(
        f"allowed sandbox host {value[:60]!r}: give NAME[:PORT], e.g. sandbox.example or localhost:9000"
    )
    if not text.isascii() or len(text) > 260:
        raise problem
    text = text.lower()
    if text.startswith("["):  # [IPv6] or [IPv6]:PORT
        end = text.find("]") + 1
        name, sep, port = text[:end], text[end : end + 1], text[end + 1 :]
        if not end or sep not in ("", ":"):
            raise problem
    elif text.count(":") > 1:  # a bare IPv6 address: no port
        name, sep, port = f"[{text}]", "", ""
    else:
        name, sep, port = text.partition(":")
    if name.startswith("["):
        address = name[1:-1]
        if not _IPV6.fullmatch(address):
            raise problem
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise problem from None
    elif len(name) > 253 or not _HOST_NAME.fullmatch(name):
        raise problem
    if sep and (not _PORT.fullmatch(port) or int(port) > 65535):
        raise problem
    return f"{name}:{port}" if port else name


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """The names in ``NORBIT_SANDBOX_ALLOWED_HOSTS``: separated by commas or whitespace."""
    return tuple(parse_allowed_host(item) for item in re.split(r"[,\s]+", text) if item)


def allowed_hosts(port: int, *, bound: str | None = None, names: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` values (lower case) the sandbox at ``port`` answers: the loopback names at that port (and
    without it at port 80, as browsers leave the default port out), ``bound`` (the address the server was bound
    to, when it is not a loopback one) likewise, and ``names`` (from :func:`parse_allowed_host`): a ``NAME:PORT``
    as it is, a ``NAME`` without a port (a reverse proxy's default port) and at ``port``."""
    loopback = set(_NAMES)
    if bound:
        loopback.add(f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound)
    hosts = {f"{name.lower()}:{port}" for name in loopback}
    if port == 80:
        hosts |= {name.lower() for name in loopback}
    for name in names:
        hosts.add(name)
        if ":" not in name.rpartition("]")[2]:  # no port given
            hosts.add(f"{name}:{port}")
    return frozenset(hosts)


def allowed_origins(port: int, *, bound: str | None = None, names: Iterable[str] = ()) -> frozenset[str]:
    """The ``Origin`` values (lower case) of the sandbox's own page: ``http://`` and a loopback host, or
    ``http://`` or ``https://`` (a proxy may add TLS) and an allowed name."""
    names = tuple(names)
    origins = {f"http://{host}" for host in allowed_hosts(port, bound=bound)}
    for host in allowed_hosts(port, names=names) - allowed_hosts(port):
        origins |= {f"http://{host}", f"https://{host}"}
    return frozenset(origins)


def host_allowed(host: str | None, port: int, *, bound: str | None = None, names: Iterable[str] = ()) -> bool:
    """Whether a request's ``Host`` header names the server (a missing header never does)."""
    value = None if host is None else _field(host)
    return value is not None and value in allowed_hosts(port, bound=bound, names=names)


def origin_allowed(origin: str | None, port: int, *, bound: str | None = None, names: Iterable[str] = ()) -> bool:
    """Whether a request's ``Origin`` header is the sandbox's own page; a request without one (not sent by a
    browser on another site's behalf) passes. ``null`` (a sandboxed frame, a redirect) does not."""
    if origin is None:
        return True
    value = _field(origin)
    return value is not None and value in allowed_origins(port, bound=bound, names=names)


def origin_form(target: str) -> tuple[str, str] | None:
    """A request target's path and query when it is a path (``/path?query``); None for anything else: an
    absolute URL, ``//authority/path``, an authority, ``*``."""
    if not target.startswith("/") or target.startswith("//"):
        return None
    path, _, query = target.partition("#")[0].partition("?")
    return path, query


def refusal_text(port: int) -> bytes:
    """The short plain body of a refusal: where the sandbox does answer."""
    return (
        f"Refused: this sandbox answers only at http://127.0.0.1:{port}/ or http://localhost:{port}/"
        " (allow another name with --allow-host NAME[:PORT])\n"
    ).encode()
