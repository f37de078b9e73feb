"""A Starlette host application: Slack's Request URL and the host's own web-chat endpoint in one ASGI app.

- ``POST /slack/events``: Slack's Request URL (events, the ``/archive`` command and the Join button).
- ``POST /customer/{conversation_id}`` with ``{"user": {"id": ..., "name": ...}, "id": ..., "text": ...}``: what
  the host's web chat calls when a customer writes.

With SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_MAIN_CHANNEL set: ``uvicorn examples.asgi_app:app``.
``python examples/asgi_app.py --demo [--port 0]`` serves it against the local SlackEmulator instead and shows the
round trip: a customer message through the endpoint, then an agent's answer posted to ``/slack/events``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from norbit_connectors import AgentReply, Conversation, Message, NorbitError, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import SQLiteStore
from norbit_connectors.testing import SlackEmulator


def create_app(config: SlackConfig, database: str | Path, *, limiter: SlackLimiter | None = None) -> Starlette:
    slack = SlackConnector(config, limiter=limiter)

    async def on_agent_reply(reply: AgentReply) -> None:
        # A real host pushes this to the customer's browser (WebSocket, SSE, push notification...).
        print(f"agent reply for {reply.conversation_id}: {reply.message.text}", flush=True)

    hub = Hub(store=SQLiteStore(database), connectors=[slack], on_agent_reply=on_agent_reply)

    async def customer(request: Request) -> JSONResponse:
        try:
            data = await request.json()
            user = User(id=str(data["user"]["id"]), name=str(data["user"]["name"]))
            conversation = Conversation(id=request.path_params["conversation_id"], user=user)
            await hub.customer_message(conversation, Message(id=str(data["id"]), text=str(data["text"])))
        except (ValueError, KeyError, TypeError, NorbitError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        return JSONResponse({"accepted": True}, status_code=202)  # committed; delivered by the hub's workers

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub:  # runs the delivery workers for as long as the app serves
            yield

    routes = [
        Route("/customer/{conversation_id}", customer, methods=["POST"]),
        # The Slack app answers every path below /slack; configure https://<host>/slack/events as Request URL.
        Mount("/slack", slack.asgi_app()),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub, app.state.slack = hub, slack
    return app


def __getattr__(name: str) -> Starlette:
    # `uvicorn examples.asgi_app:app` builds the app from the environment when it first looks it up.
    if name != "app":
        raise AttributeError(name)
    config = SlackConfig(
        bot_token=os.environ["SLACK_BOT_TOKEN"],
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
        main_channel=os.environ["SLACK_MAIN_CHANNEL"],
        base_url=os.environ.get("SLACK_BASE_URL", "https://slack.com/api/"),
    )
    return create_app(config, os.environ.get("NORBIT_SQLITE_PATH", "norbit.sqlite3"))


def post_json(url: str, payload: object) -> int:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    # Loopback: never through a proxy from the environment.
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        return int(response.status)


async def demo(port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, SlackEmulator() as emulator:
        ann = emulator.add_user("ann", real_name="Ann Agent")
        support = emulator.add_channel("support", members=[emulator.bot_user_id, ann])
        config = SlackConfig(
            bot_token=emulator.bot_token,
            signing_secret=emulator.signing_secret,
            main_channel=support,
            base_url=emulator.base_url,
        )
        app = create_app(config, Path(tmp) / "norbit.sqlite3", limiter=SlackLimiter(enabled=False))
        hub: Hub = app.state.hub
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()  # requests queue here until uvicorn accepts them: no need to wait for its startup
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            print(f"serving on {url}", flush=True)

            body = {"user": {"id": "u1", "name": "Zoë Smith"}, "id": "m1", "text": "Hello! Where is my order?"}
            status = await anyio.to_thread.run_sync(post_json, f"{url}/customer/c1", body)
            print(f"POST /customer/c1 -> {status}", flush=True)
            await hub.wait_idle()
            channel = await app.state.slack.channel_for("c1")
            for message in emulator.messages(channel):
                print(f"in Slack #{emulator.channels[channel]['name']}: {message['text']}", flush=True)

            emulator.join(channel, ann)
            answer = await emulator.post_as_user(ann, channel, "Hi Zoë, it ships today.").apost(f"{url}/slack/events")
            print(f"POST /slack/events -> {answer.status}", flush=True)
            await hub.wait_idle()
            server.should_exit = True
    print("done", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="run against the local SlackEmulator")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    if args.demo or not os.environ.get("SLACK_BOT_TOKEN"):
        anyio.run(demo, args.port)
    else:
        uvicorn.run(__getattr__("app"), host="127.0.0.1", port=args.port)
