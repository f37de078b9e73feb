"""Every example runs to completion against the local Slack emulator and prints what it demonstrates.

(examples/socket_mode.py is exercised by tests/slack/test_socket_mode.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "NORBIT_TEST_POSTGRES_DSN"
# The emulator listens on 127.0.0.1: a proxy from the environment must not get in the way; the examples must not
# reach for a real Slack workspace either.
DROPPED = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
DROPPED += ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_MAIN_CHANNEL", "SLACK_APP_TOKEN", "SLACK_BASE_URL")


def run_example(path: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in DROPPED}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / path), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quickstart() -> None:
    result = run_example("examples/quickstart.py")
    assert result.returncode == 0, result.stderr
    # Slack's :rocket: reaches the customer as the emoji itself.
    assert "→ to the customer, from Ann: Hi Zoë, I'm on it \N{ROCKET}" in result.stdout
    channel = result.stdout.split("#zoe-smith (members: 2)\n", 1)[1]
    assert channel.splitlines()[:2] == [
        "  Zoë Smith: Hello! My order has not arrived.",
        "  ann: Hi Zoë, I'm on it :rocket:",
    ]


def test_asgi_app_round_trip() -> None:
    result = run_example("examples/asgi_app.py", "--demo", "--port", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("serving on http://127.0.0.1:")
    assert lines[1:] == [
        "POST /customer/c1 -> 202",
        "in Slack #zoe-smith: Hello! Where is my order?",
        "POST /slack/events -> 200",
        "agent reply for c1: Hi Zoë, it ships today.",
        "done",
    ]


def test_trio_host() -> None:
    result = run_example("examples/trio_host.py", "--demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Slack channel #zoe-smith: Hello from a trio host!",
        "handle_http answered 200",
        "agent reply (on trio): Hi Zoë, answered on trio.",
    ]


def test_multi_worker_without_postgres_says_so() -> None:
    result = run_example("examples/multi_worker/app.py", "--demo", env={POSTGRES: ""})
    assert result.returncode == 2
    assert "this demo needs PostgreSQL: set NORBIT_TEST_POSTGRES_DSN" in result.stderr


def test_multi_worker() -> None:
    if not os.environ.get(POSTGRES):
        pytest.skip(f"{POSTGRES} is not set: the multi-worker example needs a PostgreSQL server")
    result = run_example("examples/multi_worker/app.py", "--demo")
    assert result.returncode == 0, result.stderr
    assert "2 uvicorn workers are up" in result.stdout
    assert result.stdout.count("accepted by worker ") == 6
    assert "all 6 messages are in Slack, once each" in result.stdout
    assert result.stdout.count("Slack event delivered: 200") == 2
    assert "] agent reply for c1: Hi Zoë, we are on it." in result.stdout
    assert "agent replies handed to the host: 1" in result.stdout
