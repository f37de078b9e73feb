"""Which URLs a connector may fetch, and whether its credentials may go with the request.

The rule for media a platform names by URL: ``https`` only, to a host whose every address is public (never
loopback, private, link-local, unspecified, multicast or reserved), with no user name or password in the URL;
a URL whose origin is exactly a *trusted* origin (the configured API base URL: the platform itself, or its
emulator on 127.0.0.1) is fetched whatever it is. Credentials go only to the origins the caller names.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable

from attrs import frozen

__all__ = ["UnsafeUrl", "UrlVerdict", "address_allowed", "judge_url", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeUrl(ValueError):
    """A URL the connector refuses to fetch; ``reason`` says why (never the URL, which may carry a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@frozen(kw_only=True)
class UrlVerdict:
    """What :func:`judge_url` decided.

    ``allowed``: may be fetched (when ``resolve`` is set, only if every address of that host is allowed too);
    ``reason``: why not; ``credentials``: the caller's token may go with it; ``trusted``: the origin is trusted;
    ``resolve``: the host name whose addresses must still be checked with :func:`address_allowed`.
    """

    allowed: bool
    reason: str = ""
    credentials: bool = False
    trusted: bool = False
    resolve: str | None = None
    port: int | None = None


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased, the default port left out; None when it has none."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def address_allowed(address: str) -> bool:
    """Whether an IP address (as ``getaddrinfo`` gives it) is one a fetch may go to: a public unicast one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_allowed(str(embedded))
        if ip in _NAT64:
            return address_allowed(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def judge_url(url: str, *, trusted: Iterable[str] = (), credentials_for: Iterable[str] = ()) -> UrlVerdict:
    """Decide whether ``url`` may be fetched (see the module's rule), and with credentials or not.

    ``trusted``: origins (or URLs, whose origin counts) fetched whatever they are; ``credentials_for``: origins
    that may receive the caller's token (only ever over ``https``, or a trusted origin).
    """
    if not isinstance(url, str) or not url or len(url) > 8192:
        return UrlVerdict(allowed=False, reason="not a URL")
    if any(ord(c) <= 0x20 or c in "\\\x7f" for c in url):
        return UrlVerdict(allowed=False, reason="a URL with spaces, control characters or backslashes")
    own = origin(url)
    if own is None:
        return UrlVerdict(allowed=False, reason="not an absolute URL")
    trusted_origins = {o for o in (origin(t) for t in trusted) if o is not None}
    token_origins = {o for o in (origin(t) for t in credentials_for) if o is not None}
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return UrlVerdict(allowed=False, reason="a URL with a user name or password")
    if own in trusted_origins:
        return UrlVerdict(allowed=True, trusted=True, credentials=own in token_origins)
    if parts.scheme.lower() != "https":
        return UrlVerdict(allowed=False, reason="not https")
    host = (parts.hostname or "").lower()
    credentials = own in token_origins
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not address_allowed(str(literal)):
            return UrlVerdict(allowed=False, reason="a private, loopback or otherwise local address")
        return UrlVerdict(allowed=True, credentials=credentials)
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):  # 127.1, 2130706433, 0x7f.1: addresses in a shape we do not take
        return UrlVerdict(allowed=False, reason="a numeric host that is not a plain IP address")
    if host.rstrip(".") == "localhost" or host.endswith(".localhost") or host.endswith(".localhost."):
        return UrlVerdict(allowed=False, reason="a private, loopback or otherwise local address")
    return UrlVerdict(allowed=True, credentials=credentials, resolve=host, port=parts.port or 443)
