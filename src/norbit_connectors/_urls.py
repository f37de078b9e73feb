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
    """Whether an IP address (as ``getaddrinfo`` gives it) is one a fetch may go to: a public unicast one.

    An explicit list (not ``ipaddress``'s ``is_global``, whose tables changed between patch releases): every
    IPv4 range that is not public unicast, and IPv6 forms that embed an IPv4 address (mapped, compatible, SIIT,
    NAT64, local-use NAT64, 6to4) judged by that address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            return address_allowed(str(ip.sixtofour))
        for network in _EMBEDDING:
            if ip in network:
                return address_allowed(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        return not any(ip in network for network in _DENIED_V6)
    return not any(ip in network for network in _DENIED_V4)


def _networks(*texts: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


_DENIED_V4 = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local (cloud metadata services)
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the broadcast address
)
# Forms whose last 32 bits are an IPv4 address: ::/96 (compatible; also :: and ::1), ::ffff:0:0/96 (mapped),
# ::ffff:0:0:0/96 (SIIT), 64:ff9b::/96 (NAT64), and 64:ff9b:1::/96 (local-use NAT64 with a /96 prefix; the rest of
# 64:ff9b:1::/48 places the address elsewhere, and is refused).
_EMBEDDING = _networks("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/96")
_DENIED_V6 = _networks(
    "64:ff9b::/32",  # the rest of the NAT64 space, local-use NAT64 (64:ff9b:1::/48) included
    "100::/64",  # discard
    "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, benchmarking, ...)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "5f00::/16",  # segment routing
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated, still routed locally by some stacks)
    "ff00::/8",  # multicast
    "::/8",  # reserved (beside the embedding forms above)
    "2002::/16",  # 6to4 without a usable embedded address
)


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
