"""Which requests the sandbox answers: those addressed to the loopback address and port it serves.

A page on another site can have the browser send requests to 127.0.0.1 by re-pointing its own name there (DNS
rebinding); such requests still carry that site's name in ``Host`` (and in ``Origin`` on a POST), so checking both
against the loopback names keeps the sandbox's data and actions to the person at this machine.
"""

from __future__ import annotations

__all__ = ["host_allowed", "loopback_hosts", "origin_allowed", "refusal_text"]

_NAMES = ("127.0.0.1", "localhost", "[::1]")


def loopback_hosts(port: int, extra: str | None = None) -> frozenset[str]:
    """The ``Host`` values (lower case) that name this machine's loopback at ``port``; ``extra``: one more name
    (the address the server was bound to, when it is not a loopback one)."""
    names = set(_NAMES)
    if extra:
        names.add(f"[{extra}]" if ":" in extra and not extra.startswith("[") else extra)
    hosts = {f"{name.lower()}:{port}" for name in names}
    if port == 80:  # browsers leave the default port out
        hosts |= {name.lower() for name in names}
    return frozenset(hosts)


def host_allowed(host: str | None, port: int, extra: str | None = None) -> bool:
    """Whether a request's ``Host`` header names the server (a missing header never does)."""
    return host is not None and host.lower() in loopback_hosts(port, extra)


def origin_allowed(origin: str | None, port: int, extra: str | None = None) -> bool:
    """Whether a request's ``Origin`` header is the sandbox's own page; a request without one (not sent by a
    browser on another site's behalf) passes. ``null`` (a sandboxed frame, a redirect) does not."""
    if origin is None:
        return True
    return origin.lower() in {f"http://{host}" for host in loopback_hosts(port, extra)}


def refusal_text(port: int) -> bytes:
    """The short plain body of a refusal: where the sandbox does answer."""
    return f"Refused: this sandbox answers only at http://127.0.0.1:{port}/ or http://localhost:{port}/\n".encode()
