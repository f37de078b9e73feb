"""A hub in its own process, driven by the reliability tests.

Run as ``python _hub_child.py --backend asyncio|trio --store sqlite:PATH|postgres:DSN [--lease S] [--http]
[--replies FILE] [--limiter [--post-burst N] [--apart]] [--workers N]``, with the Slack settings in the
``NORBIT_CHILD_SLACK`` environment variable (JSON: base_url, bot_token, signing_secret, main_channel,
agent_links). It runs a Hub (``--workers`` delivery workers, 8 by default) with one SlackConnector, whose own rate
limiter is on with ``--limiter`` (as in production) and off otherwise (for an emulator without limits;
``--post-burst``: chat.postMessage's burst, ``--apart``: its cells in this process even on a shared store, to show
what sharing them prevents), and answers JSON lines on stdin with JSON lines on stdout:

- ``{"op": "accept", "messages": [{"conversation": ID, "user": ID, "name": NAME, "message": ID, "text": T}]}``:
  ``hub.customer_message`` for each, in order; answers ``{"op": "accepted", "n": N}`` once all are committed.
- ``{"op": "idle"}``: ``hub.wait_idle()``; answers ``{"op": "idle", "reconciled": N}``, N being how many posts
  this process found already in Slack (a post whose result an earlier process lost) instead of posting again.
- ``{"op": "stop"}``: leaves the hub and exits.

At start it prints ``{"op": "ready", "port": P}``: with ``--http``, P is the port of the Slack Request URL
(``http://127.0.0.1:P/slack``, ``SlackConnector.asgi_app()`` under uvicorn on asyncio, under a minimal server
on trio), else null. With ``--replies``, every
``on_agent_reply`` callback appends one JSON line (conversation id, message id, text, pid) to that file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.abc

from norbit_connectors import AgentReply, Conversation, Delivery, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.slack._limits import POST_BURST
from norbit_connectors.store import PostgresStore, SQLiteStore, Store

ENV = "NORBIT_CHILD_SLACK"

Scope = MutableMapping[str, Any]
AsgiApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class _CountReconciled(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "already posted" in record.getMessage():
            self.count += 1


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _store(spec: str) -> Store:
    kind, _, where = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(where)
    if kind == "postgres":
        return PostgresStore(where)
    raise SystemExit(f"unknown store {spec!r}")


async def _serve_http(listener: anyio.abc.SocketListener, app: AsgiApp) -> None:
    """A minimal HTTP/1.1 server (one request per connection) in front of an ASGI app, on either backend."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive(65536)
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
            length = next((int(v.strip()) for k, v in headers if k.strip().lower() == "content-length"), 0)
            while len(body) < length:
                body += await stream.receive(65536)
            path, _, query = target.partition("?")
            scope = {
                "type": "http",
                "method": method,
                "path": path,
                "query_string": query.encode("latin-1"),
                "headers": [(k.strip().lower().encode("latin-1"), v.strip().encode("latin-1")) for k, v in headers],
            }
            sent = False

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            status = 500
            out_headers: list[tuple[bytes, bytes]] = []
            out_body = b""

            async def send(message: dict[str, Any]) -> None:
                nonlocal status, out_headers, out_body
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    out_headers = list(message.get("headers", []))
                elif message["type"] == "http.response.body":
                    out_body += message.get("body", b"")

            await app(scope, receive, send)
            lines_out = [f"HTTP/1.1 {status} X".encode("latin-1")]
            lines_out += [k + b": " + v for k, v in out_headers if k.lower() != b"content-length"]
            lines_out += [f"Content-Length: {len(out_body)}".encode(), b"Connection: close"]
            await stream.send(b"\r\n".join(lines_out) + b"\r\n\r\n" + out_body)

    await listener.serve(handle)


class _Apart(SlackLimiter):
    """A limiter that never shares its cells."""

    def share(self, store: object | None, workspace: str = "") -> None:
        super().share(None, workspace)


async def main(args: argparse.Namespace) -> None:
    settings = json.loads(os.environ[ENV])
    config = SlackConfig(
        bot_token=settings["bot_token"],
        signing_secret=settings["signing_secret"],
        main_channel=settings["main_channel"],
        agent_links=settings.get("agent_links", {}),
        base_url=settings["base_url"],
    )
    limiter = (_Apart if args.apart else SlackLimiter)(enabled=args.limiter, post_burst=args.post_burst)
    slack = SlackConnector(config, limiter=limiter)
    reconciled = _CountReconciled()
    logging.getLogger("norbit_connectors.slack").addHandler(reconciled)
    logging.getLogger("norbit_connectors.slack").setLevel(logging.INFO)

    async def on_agent_reply(reply: AgentReply) -> Delivery | None:
        line = {
            "pid": os.getpid(),
            "conversation_id": reply.conversation_id,
            "message_id": reply.message.id,
            "text": reply.message.text,
        }
        # One write() of a short line on an O_APPEND file: lines from several processes never interleave.
        fd = os.open(args.replies, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(line) + "\n").encode())
        finally:
            os.close(fd)
        return None

    hub = Hub(
        store=_store(args.store),
        connectors=[slack],
        lease_seconds=args.lease,
        workers=args.workers,
        retry_base=0.05,
        poll_interval=0.2,
        on_agent_reply=on_agent_reply if args.replies else None,
    )
    async with hub, anyio.create_task_group() as tg:
        port = None
        server = None
        if args.http and args.backend == "asyncio":
            # As deployed (docs/deploying.md): uvicorn in front of the connector's ASGI app.
            import socket

            import uvicorn

            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(slack.asgi_app(), lifespan="off", log_level="warning"))
            tg.start_soon(server.serve, [sock])
            while not server.started:  # noqa: ASYNC110 - uvicorn has no event to wait on
                await anyio.sleep(0.01)
        elif args.http:
            # uvicorn runs on asyncio only: on trio, a minimal server in front of the same ASGI app.
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            tg.start_soon(_serve_http, listener, slack.asgi_app())
        _emit({"op": "ready", "port": port, "pid": os.getpid()})
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
            if not line:
                break
            command = json.loads(line)
            op = command["op"]
            if op == "accept":
                for item in command["messages"]:
                    conversation = Conversation(id=item["conversation"], user=User(id=item["user"], name=item["name"]))
                    await hub.customer_message(conversation, Message(id=item["message"], text=item["text"]))
                _emit({"op": "accepted", "n": len(command["messages"])})
            elif op == "idle":
                await hub.wait_idle()
                _emit({"op": "idle", "reconciled": reconciled.count})
            elif op == "stop":
                break
            else:
                raise SystemExit(f"unknown op {op!r}")
        if server is not None:
            server.should_exit = True
        else:
            tg.cancel_scope.cancel()
    _emit({"op": "stopped"})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("asyncio", "trio"), required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--replies", default="")
    parser.add_argument("--limiter", action="store_true")
    parser.add_argument("--post-burst", type=int, default=POST_BURST)
    parser.add_argument("--apart", action="store_true")
    parser.add_argument("--workers", type=int, default=8)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    anyio.run(main, parser.parse_args(), backend=parser.parse_args().backend)
