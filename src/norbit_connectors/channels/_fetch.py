"""Fetching a file a platform named by URL: the host is resolved once, every address checked, and the request goes
to the address that was checked (never resolved again, never through a proxy from the environment), within a size
cap and an overall time limit."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from .._urls import UnsafeUrl, address_allowed, judge_url
from ..exceptions import NotFound, PermissionDenied, RateLimited, RemoteError, TransportError

if TYPE_CHECKING:
    import httpx

__all__ = ["MediaClient", "Resolver", "pinned_request", "system_resolve"]

#: ``async (host, port) -> addresses``: how a media host's name becomes the addresses checked and connected to.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

#: Longest a whole download may take (a server dripping one byte at a time never times a single read out).
DOWNLOAD_TOTAL_SECONDS = 300.0


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system's resolver."""
    found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for *_, sockaddr in found]


async def pinned_request(
    url: str, host: str, port: int, resolve: Resolver, service: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL with the checked address as its host, headers, request extensions) for fetching ``url``: ``host`` is
    resolved once and every address must be allowed; the request then names ``host`` in ``Host`` and in TLS
    (server name and certificate check), but connects to the address that was checked."""
    from ._http import require_httpx

    try:
        addresses = list(await resolve(host, port))
    except (OSError, UnicodeError):
        raise TransportError(f"{service}: the file's host cannot be resolved", service=service) from None
    if not addresses or not all(address_allowed(a) for a in addresses):
        raise UnsafeUrl("a host with a private, loopback or otherwise local address")
    # One address, the one checked: an IPv4 one first, as the more widely routed.
    address = next((a for a in addresses if ":" not in a), addresses[0]).split("%", 1)[0]
    target = require_httpx().URL(url)
    default_port = 443 if target.scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    return str(target.copy_with(host=address)), {"Host": host_header}, {"sni_hostname": host}


class MediaClient:
    """Downloads of media URLs for one connector. ``resolve``: the resolver (the system's by default);
    ``proxy``: a proxy URL to use, when the host wants one (the environment's proxy settings are never used);
    ``total_timeout``: the longest a whole download may take; ``transport``: an httpx transport (for tests);
    ``verify``: the TLS certificate check (httpx's ``verify``: True, or an ``ssl.SSLContext`` with other roots)."""

    def __init__(
        self,
        service: str,
        *,
        timeout: float = 30.0,
        total_timeout: float = DOWNLOAD_TOTAL_SECONDS,
        resolve: Resolver | None = None,
        proxy: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.total_timeout = total_timeout
        self.resolve: Resolver = resolve or system_resolve
        self.proxy = proxy
        self.transport = transport
        self.verify = verify

    def _client(self) -> httpx.AsyncClient:
        from ._http import require_httpx

        httpx_module = require_httpx()
        # No connection is reused: one made for one name must not carry a request for another at the same address.
        return httpx_module.AsyncClient(  # type: ignore[no-any-return]
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            proxy=self.proxy,
            transport=self.transport,
            limits=httpx_module.Limits(max_keepalive_connections=0),
            verify=self.verify,
        )

    async def fetch(
        self,
        url: str,
        *,
        limit: int,
        trusted: Iterable[str],
        token: str | None = None,
        token_origins: Iterable[str] = (),
    ) -> bytes | None:
        """The file at ``url`` (None when larger than ``limit`` bytes), if
        :func:`~norbit_connectors._urls.judge_url` allows it and every address of its host is public; ``token`` goes
        with it (as a bearer token) only to a trusted origin or one of ``token_origins``. Raises
        :class:`~norbit_connectors._urls.UnsafeUrl` for any other URL."""
        verdict = judge_url(url, trusted=trusted, credentials_for=token_origins)
        if not verdict.allowed:
            raise UnsafeUrl(verdict.reason)
        headers: dict[str, str] = {}
        extensions: dict[str, Any] = {}
        if verdict.resolve is not None:
            url, headers, extensions = await pinned_request(
                url, verdict.resolve, verdict.port or 443, self.resolve, self.service
            )
        if token and verdict.credentials:
            headers["Authorization"] = f"Bearer {token}"
        return await self.download(url, limit=limit, headers=headers, extensions=extensions)

    async def download(
        self,
        url: str,
        *,
        limit: int,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> bytes | None:
        """The body at ``url``, or None when it is larger than ``limit`` bytes. Raises for a non-2xx answer,
        :class:`~norbit_connectors._urls.UnsafeUrl` for a redirect (never followed), and TransportError when the
        whole download takes longer than ``total_timeout``."""
        from ._http import require_httpx

        httpx_module = require_httpx()
        try:
            with anyio.fail_after(self.total_timeout):
                async with self._client() as client:
                    request = client.build_request("GET", url, headers=dict(headers or {}))
                    request.extensions.update(extensions or {})
                    response = await client.send(request, stream=True)
                    try:
                        return await _read(self.service, response, limit)
                    finally:
                        await response.aclose()
        except TimeoutError:
            raise TransportError(
                f"{self.service}: the download took longer than {self.total_timeout:g}s", service=self.service
            ) from None
        except httpx_module.HTTPError as exc:
            raise TransportError(
                f"{self.service}: the download failed ({type(exc).__name__})", service=self.service
            ) from None


async def _read(service: str, response: httpx.Response, limit: int) -> bytes | None:
    if 300 <= response.status_code < 400:
        raise UnsafeUrl("a redirect (not followed)")
    if response.status_code >= 400:
        await response.aread()
        raise download_error(service, response.status_code)
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def download_error(service: str, status: int) -> Exception:
    """The NorbitError for a download answered with HTTP ``status`` (4xx or 5xx)."""
    if status == 429:
        return RateLimited(f"{service}: download rate limited", retry_after=1.0, service=service)
    if status >= 500:
        return TransportError(f"{service}: download failed with HTTP {status}", code=str(status), service=service)
    if status in (401, 403):
        return PermissionDenied(f"{service}: download refused (HTTP {status})", code=str(status), service=service)
    if status in (404, 410):
        return NotFound(f"{service}: file not found (HTTP {status})", code=str(status), service=service)
    return RemoteError(f"{service}: download failed with HTTP {status}", code=str(status), service=service)
