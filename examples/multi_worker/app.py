"""The host application for several uvicorn workers sharing one PostgreSQL database (see README.md).

Run: ``uvicorn examples.multi_worker.app:app --workers 3`` with NORBIT_POSTGRES_DSN, SLACK_BOT_TOKEN,
SLACK_SIGNING_SECRET and SLACK_MAIN_CHANNEL set (SLACK_BASE_URL optional). ``python examples/multi_worker/app.py
--demo`` starts two workers against the local SlackEmulator and a throwaway database on the PostgreSQL server
named by NORBIT_TEST_POSTGRES_DSN.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from norbit_connectors import AgentReply, Conversation, Message, NorbitError, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector
from norbit_connectors.store import PostgresStore
from norbit_connectors.testing import SlackEmulator

ROOT = Path(__file__).resolve().parents[2]
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def create_app(environ: Mapping[str, str]) -> Starlette:
    """One worker's app. Every worker has its own Hub; they share the work through the database."""
    config = SlackConfig(
        bot_token=environ["SLACK_BOT_TOKEN"],
        signing_secret=environ["SLACK_SIGNING_SECRET"],
        main_channel=environ["SLACK_MAIN_CHANNEL"],
        base_url=environ.get("SLACK_BASE_URL", "https://slack.com/api/"),
    )
    slack = SlackConnector(config)

    async def on_agent_reply(reply: AgentReply) -> None:
        print(f"[worker {os.getpid()}] agent reply for {reply.conversation_id}: {reply.message.text}", flush=True)

    hub = Hub(store=PostgresStore(environ["NORBIT_POSTGRES_DSN"]), connectors=[slack], on_agent_reply=on_agent_reply)

    async def customer(request: Request) -> JSONResponse:
        try:
            data = await request.json()
            user = User(id=str(data["user"]["id"]), name=str(data["user"]["name"]))
            conversation = Conversation(id=request.path_params["conversation_id"], user=user)
            await hub.customer_message(conversation, Message(id=str(data["id"]), text=str(data["text"])))
        except (ValueError, KeyError, TypeError, NorbitError) as exc:
            return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
        return JSONResponse({"accepted": True, "worker": os.getpid()}, status_code=202)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub:
            yield

    routes = [Route("/customer/{conversation_id}", customer, methods=["POST"]), Mount("/slack", slack.asgi_app())]
    return Starlette(routes=routes, lifespan=lifespan)


def __getattr__(name: str) -> Starlette:
    # Each uvicorn worker imports this module and looks `app` up once: build it from the environment then.
    if name != "app":
        raise AttributeError(name)
    return create_app(os.environ)


def post_json(url: str, payload: object) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.1)


def demo() -> int:
    server = os.environ.get("NORBIT_TEST_POSTGRES_DSN")
    if not server:
        print(
            "this demo needs PostgreSQL: set NORBIT_TEST_POSTGRES_DSN to a server it may create a database on, "
            "e.g. postgresql://postgres@127.0.0.1:5432/postgres",
            file=sys.stderr,
        )
        return 2
    import psycopg
    from psycopg.conninfo import make_conninfo

    database = f"norbit_example_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        with SlackEmulator() as emulator:
            support = emulator.add_channel("support", members=[emulator.bot_user_id])
            with socket.socket() as probe:  # a free port for uvicorn to bind
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            env = {k: v for k, v in os.environ.items() if k not in PROXIES}
            env |= {
                "NORBIT_POSTGRES_DSN": make_conninfo(server, dbname=database),
                "SLACK_BOT_TOKEN": emulator.bot_token,
                "SLACK_SIGNING_SECRET": emulator.signing_secret,
                "SLACK_MAIN_CHANNEL": support,
                "SLACK_BASE_URL": emulator.base_url,
            }
            command = [sys.executable, "-m", "uvicorn", "examples.multi_worker.app:app", "--workers", "2"]
            command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            workers = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            replies: list[str] = []
            echo = threading.Thread(target=collect, args=(workers, replies), daemon=True)
            echo.start()
            try:
                send_and_check(emulator, f"http://127.0.0.1:{port}", replies)
            finally:
                workers.terminate()
                workers.wait(timeout=30)
                echo.join(timeout=10)
            print(f"agent replies handed to the host: {len(replies)}", flush=True)
            return 0
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def collect(workers: subprocess.Popen[str], replies: list[str]) -> None:
    """Echo what the workers print and keep their agent replies."""
    assert workers.stdout is not None
    for line in workers.stdout:
        print(line, end="", flush=True)
        if "agent reply for" in line:
            replies.append(line)


def send_and_check(emulator: SlackEmulator, url: str, replies: list[str]) -> None:
    def up() -> bool:
        try:
            post_json(f"{url}/customer/probe", {})
        except urllib.error.HTTPError:
            return True  # 400: a worker answered
        except OSError:
            return False
        return True

    wait_until(up, "the workers to start")
    print("2 uvicorn workers are up", flush=True)
    expected: list[str] = []
    pids: set[object] = set()
    for n, name in enumerate(["Zoë Smith", "Ali Khan", "Mia Rossi"], start=1):
        for m in (1, 2):
            text = f"message {m} from {name}"
            answer = post_json(
                f"{url}/customer/c{n}", {"user": {"id": f"u{n}", "name": name}, "id": f"m{m}", "text": text}
            )
            print(f"{text!r} accepted by worker {answer['worker']}", flush=True)
            pids.add(answer["worker"])
            expected.append(text)

    def in_slack() -> list[str]:
        texts: list[str] = []
        for channel in emulator.channels.values():
            if not channel["is_general"] and channel["name"] != "support":
                texts += [message["text"] for message in emulator.messages(channel["id"])]
        return texts

    wait_until(lambda: sorted(in_slack()) == sorted(expected), "the messages to reach Slack")
    print(f"all {len(expected)} messages are in Slack, once each ({len(pids)} worker(s) took requests)", flush=True)

    # An agent answers in the first channel; Slack delivers the event, then retries it (to whichever worker).
    ann = emulator.add_user("ann", real_name="Ann Agent")
    channel = next(c["id"] for c in emulator.channels.values() if c["name"] == "zoe-smith")
    emulator.join(channel, ann)
    event = emulator.post_as_user(ann, channel, "Hi Zoë, we are on it.")
    for request in (event, event.retry()):
        print(f"Slack event delivered: {request.post(url + '/slack/events').status}", flush=True)
    wait_until(lambda: bool(replies), "the agent's reply")


if __name__ == "__main__":
    if "--demo" in sys.argv[1:]:
        sys.exit(demo())
    print(__doc__)
