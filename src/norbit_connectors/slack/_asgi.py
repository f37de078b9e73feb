"""The Slack connector's Request URL as a plain ASGI application (no framework needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._connector import Connector

__all__ = ["asgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def asgi_app(connector: Connector) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app answering every HTTP request with ``connector.handle_http``. Bodies beyond the connector's
    ``max_body_bytes`` get 413 without being read whole."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        limit = connector.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        too_large = False
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large = True
            elif chunk:
                chunks.append(chunk)
            more = bool(message.get("more_body", False))
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if too_large:
            status, out_headers, body = 413, {"content-type": "text/plain; charset=utf-8"}, b"request body too large"
        else:
            response = await connector.handle_http(
                headers,
                b"".join(chunks),
                method=str(scope.get("method", "POST")),
                query=scope.get("query_string", b"").decode("latin-1"),
            )
            status, out_headers, body = response.status, dict(response.headers), response.body
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers.items()]
                + [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
