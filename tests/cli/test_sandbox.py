from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._doctor import DoctorSettings, run_doctor
from norbit_connectors.exceptions import ConfigurationError
from norbit_connectors.sandbox import SandboxServer, slack_config_from_env
from norbit_connectors.sandbox._app import _card, _mrkdwn_to_text, customer_key
from norbit_connectors.testing._slack_emulator import SlackEmulator

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, limit: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + limit
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Sandbox:
    def __init__(self, data: Path, backend: str) -> None:
        self.data = data
        self.backend = backend
        self.server: SandboxServer | None = None
        self.http: httpx.Client | None = None

    def start(self) -> Sandbox:
        self.server = SandboxServer(data=str(self.data), backend=self.backend).start()  # type: ignore[arg-type]
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.server is not None:
            self.server.close()
        self.server = self.http = None

    def post(self, path: str, **payload: Any) -> Any:
        assert self.http is not None
        response = self.http.post(path, json=payload)
        assert response.status_code == 200, response.text
        return response.json()

    def state(self, customer: str = "") -> Any:
        assert self.http is not None
        response = self.http.get("/api/state", params={"customer": customer})
        assert response.status_code == 200, response.text
        return response.json()

    def channel(self, name: str, customer: str = "") -> dict[str, Any] | None:
        return next((c for c in self.state(customer)["slack"]["channels"] if c["name"] == name), None)


@pytest.fixture
def sandbox(tmp_path: Path, anyio_backend: str) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path / "sandbox.sqlite3", anyio_backend).start()
    try:
        yield box
    finally:
        box.stop()


def card_in(channel: dict[str, Any]) -> dict[str, Any] | None:
    return next((m for m in reversed(channel["messages"]) if m["card"]), None)


def test_the_whole_conversation_and_a_restart(sandbox: Sandbox) -> None:
    page = sandbox.http.get("/")  # type: ignore[union-attr]
    assert page.status_code == 200 and "norbit" in page.text
    sandbox.post("/api/customer/message", customer="Zoë Smith", text="Hello, my order <@U1> is late")

    def relayed() -> dict[str, Any] | None:
        room = sandbox.channel("zoe-smith")
        return room if room is not None and any(m["author"] == "Zoë Smith" for m in room["messages"]) else None

    room = wait_for(relayed, "the customer's message in the conversation's channel")
    assert room["is_private"] and room["member_names"] == ["Sandbox app"]
    assert [m["text"] for m in room["messages"]] == ["Hello, my order <@U1> is late"]
    support = wait_for(lambda: sandbox.channel("support") if card_in(sandbox.channel("support") or {"messages": []})
                       else None, "the notice card")  # fmt: skip
    card = card_in(support)
    assert card is not None and card["card"]["title"] == "New conversation"
    assert "Hello, my order <@U1> is late" in card["card"]["lines"]
    assert "Zoë Smith started a conversation in #zoe-smith" in card["card"]["lines"]
    assert [b["label"] for b in card["card"]["buttons"]] == ["Join", "Open channel"]

    sandbox.post("/api/agent/join", agent="cara", channel=support["id"], ts=card["ts"])
    wait_for(lambda: "Cara Diaz" in (sandbox.channel("zoe-smith") or {"member_names": []})["member_names"], "Join")

    def joined_by() -> bool:
        latest = card_in(sandbox.channel("support") or {"messages": []})
        return latest is not None and any("Cara Diaz" in line for line in latest["card"]["context"])

    wait_for(joined_by, "'Joined by' on the card")

    sandbox.post("/api/agent/message", agent="cara", channel=room["id"], text="Hi Zoë, *checking* now")
    seen = wait_for(
        lambda: [m for m in sandbox.state("Zoë Smith")["customer"]["messages"] if m["role"] == "agent"], "the reply"
    )
    assert seen[0]["author"] == "Cara Diaz" and seen[0]["text"] == "Hi Zoë, *checking* now"

    answer = sandbox.post("/api/agent/message", agent="cara", channel=room["id"], text="/archive")
    assert answer["ephemeral"] == "Archiving this conversation and its channel."
    wait_for(lambda: sandbox.state("Zoë Smith")["customer"]["status"] == "archived", "the customer side archived")
    wait_for(lambda: (sandbox.channel("zoe-smith") or {}).get("is_archived"), "the channel archived")

    sandbox.stop()
    sandbox.start()
    after = sandbox.state("Zoë Smith")
    texts = [(m["role"], m["text"]) for m in after["customer"]["messages"]]
    assert texts == [("customer", "Hello, my order <@U1> is late"), ("agent", "Hi Zoë, *checking* now")]
    assert after["customer"]["status"] == "archived"
    assert [c["name"] for c in after["customers"]] == ["Zoë Smith"]
    restored = sandbox.channel("zoe-smith")
    assert restored is not None and restored["id"] == room["id"] and restored["is_archived"]
    assert [m["text"] for m in restored["messages"] if m["author"] == "Zoë Smith"] == ["Hello, my order <@U1> is late"]
    assert all(m["earlier"] for m in restored["messages"])

    # Writing again reopens the conversation; without a user token it continues in a new channel.
    sandbox.post("/api/customer/message", customer="Zoë Smith", text="Me again")
    again = wait_for(lambda: sandbox.channel("zoe-smith-2"), "the continued channel")
    wait_for(lambda: any(m["text"] == "Me again" for m in (sandbox.channel("zoe-smith-2") or again)["messages"]),
             "the new message in the new channel")  # fmt: skip
    assert sandbox.state("Zoë Smith")["customer"]["status"] == "open"


def test_chatbot_then_human_takeover(sandbox: Sandbox) -> None:
    assert sandbox.post("/api/chatbot", enabled=True) == {"chatbot": True}
    view = sandbox.post("/api/customer/message", customer="Sam", text="What are your hours?", department="sales")
    assert view["chatbot"] is True and view["taken_over"] is False
    assert [m["role"] for m in view["messages"]] == ["customer", "bot"]
    sandbox.post("/api/idle")
    assert sandbox.channel("sam") is None  # nothing reaches Slack before a human takes over
    view = sandbox.post("/api/customer/message", customer="Sam", text="I want a human please")
    assert view["taken_over"] is True
    room = wait_for(lambda: sandbox.channel("sam"), "the channel at takeover")
    expected = ["What are your hours?", "I'm the sandbox bot", "I want a human please", "Connecting you with a person…"]
    wait_for(lambda: len((sandbox.channel("sam") or room)["messages"]) >= 4, "the transcript relayed")
    texts = [m["text"] for m in (sandbox.channel("sam") or room)["messages"]]
    assert [t[: len(e)] for t, e in zip(texts, expected, strict=True)] == expected
    sales = wait_for(lambda: card_in(sandbox.channel("sales") or {"messages": []}), "the card in #sales")
    assert "Sam" in sales["card"]["lines"][0]


def test_take_over_button(sandbox: Sandbox) -> None:
    sandbox.post("/api/chatbot", enabled=True)
    sandbox.post("/api/customer/message", customer="Ada", text="hello")
    view = sandbox.post("/api/customer/takeover", customer="Ada")
    assert view["taken_over"] is True
    wait_for(lambda: sandbox.channel("ada"), "the channel after Take over")


def test_bad_requests_are_answered_clearly(sandbox: Sandbox) -> None:
    http = sandbox.http
    assert http is not None
    cases = [
        ("/api/customer/message", {"customer": "Zed", "text": "   "}, 400, "the message must be non-empty text"),
        ("/api/customer/message", {"customer": "", "text": "hi"}, 400, "name must be non-empty"),
        ("/api/agent/message", {"agent": "nobody", "channel": "C1", "text": "hi"}, 400, "unknown agent"),
        ("/api/agent/join", {"agent": "ann", "channel": "C404", "ts": "1.2"}, 400, "unknown channel"),
        ("/api/chatbot", {"enabled": "yes"}, 400, "true or false"),
        ("/api/nothing", {}, 404, "not found"),
    ]
    for path, payload, status, message in cases:
        response = http.post(path, json=payload)
        assert response.status_code == status, (path, response.text)
        assert message in response.json()["error"], (path, response.text)
    form = http.post(
        "/api/chatbot", content=b"enabled=true", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415
    broken = http.post("/api/chatbot", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert http.get("/static/../_app.py").status_code == 404


@pytest.mark.anyio
async def test_request_url_passes_doctor(sandbox: Sandbox) -> None:
    # The sandbox serves the Slack Request URL; doctor's signed url_verification gets its challenge back.
    assert sandbox.server is not None and sandbox.server.app.slack is not None
    config = sandbox.server.app.slack.config
    settings = DoctorSettings.from_config(config, request_url=sandbox.server.url + "slack/events")
    report = await run_doctor(settings)
    assert report.ok, report.render()
    unsigned = sandbox.http.post("/slack/events", content=b"{}")  # type: ignore[union-attr]
    assert unsigned.status_code == 401


def test_bridge_configuration_from_the_environment() -> None:
    assert slack_config_from_env({}) is None
    with pytest.raises(ConfigurationError, match="SLACK_MAIN_CHANNEL"):
        slack_config_from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "a" * 32})
    config = slack_config_from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "a" * 32,
            "SLACK_MAIN_CHANNEL": "C0MAIN",
            "SLACK_DEPARTMENT_CHANNELS": "sales=C0SALES",
        }
    )
    assert config is not None and config.base_url == "https://slack.com/api/"
    assert dict(config.department_channels) == {"sales": "C0SALES"}


def test_bridge_mode_serves_the_customer_pane_and_slack(tmp_path: Path) -> None:
    with SlackEmulator() as emu:
        main = emu.add_channel("support", members=[emu.bot_user_id])
        agent = emu.add_user("dee", email="dee@support.example", real_name="Dee")
        emu.join(main, agent)
        config = slack_config_from_env(
            {
                "SLACK_BOT_TOKEN": emu.bot_token,
                "SLACK_SIGNING_SECRET": emu.signing_secret,
                "SLACK_MAIN_CHANNEL": main,
                "SLACK_BASE_URL": emu.base_url,
            }
        )
        with SandboxServer(data=str(tmp_path / "bridge.sqlite3"), slack_config=config) as server:
            http = httpx.Client(base_url=server.url)
            state = http.get("/api/state").json()
            assert state["mode"] == "slack" and state["slack"]["channels"] == []
            view = http.post("/api/customer/message", json={"customer": "Lu", "text": "hi"}).json()
            assert view["messages"][0]["text"] == "hi"
            room = wait_for(lambda: emu.find_channel("lu"), "the channel in the bridged workspace")
            wait_for(lambda: emu.messages(room["id"]), "the customer's message in the bridged workspace")
            emu.join(room["id"], agent)
            reply = emu.post_as_user(agent, room["id"], "Hello Lu")
            delivered = reply.post(server.url + "slack/events")
            assert delivered.status == 200
            wait_for(
                lambda: any(m["role"] == "agent" for m in http.get("/api/state", params={"customer": "Lu"}).json()
                            ["customer"]["messages"]),
                "the reply through the Request URL",
            )  # fmt: skip
            refused = http.post("/api/agent/message", json={"agent": "ann", "channel": main, "text": "x"})
            assert refused.status_code == 400 and "real workspace" in refused.json()["error"]
            http.close()


@given(st.text(max_size=100))
def test_customer_key_is_a_stable_slug(name: str) -> None:
    key = customer_key(name)
    assert key == customer_key(name)
    assert key and len(key) <= 48
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in key)
    assert json.loads(json.dumps(key)) == key


def test_command_line_serves_until_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NORBIT_")) and "proxy" not in k.lower()}
    env["NORBIT_SANDBOX_ALLOWED_HOSTS"] = "proxy.example, other.example:8443"
    command = [sys.executable, "-m", "norbit_connectors.cli", "sandbox", "--no-open", "--data", str(tmp_path / "s.db")]
    command += ["--allow-host", "Sandbox.Example", "--allow-host", "localhost:9000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert process.stdout.readline() == (
            "Also answering as: sandbox.example, localhost:9000, proxy.example, other.example:8443\n"
        )
        assert httpx.get(url + "api/state", timeout=30).json()["mode"] == "emulator"
        # Behind a reverse proxy or a mapped port: the names allowed on the command line and in the environment.
        for host in ("sandbox.example", "localhost:9000", "proxy.example", "other.example:8443"):
            answer = httpx.get(url + "api/state", headers={"Host": host}, timeout=30)
            assert answer.status_code == 200 and answer.json()["mode"] == "emulator", host
        for host in ("evil.example", "localhost:9001", "other.example"):
            assert httpx.get(url + "api/state", headers={"Host": host}, timeout=30).status_code == 403, host
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Stopping" in out and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "variable"),
    [(["--allow-host", "a b.example"], ""), (["--allow-host", "x.example:0"], ""), ([], "ok.example, http://x/")],
)
def test_a_bad_allowed_host_is_a_clear_error(tmp_path: Path, flags: list[str], variable: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "NORBIT_")) and "proxy" not in k.lower()}
    env["NORBIT_SANDBOX_ALLOWED_HOSTS"] = variable
    data = tmp_path / "never.sqlite3"
    command = [sys.executable, "-m", "norbit_connectors.cli", "sandbox", "--no-open", "--data", str(data), *flags]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "NAME[:PORT]" in done.stderr and "Traceback" not in done.stderr and len(done.stderr) < 300
    assert not data.exists() and done.stdout == ""


@given(st.text(max_size=200))
def test_slack_text_for_display_never_fails(text: str) -> None:
    shown = _mrkdwn_to_text(text)
    assert isinstance(shown, str)
    assert _mrkdwn_to_text("<@U1|ann> &lt;b&gt; <https://x.example|docs> <#C1|sales>") == "@ann <b> docs #sales"


@given(st.recursive(st.none() | st.text(max_size=5) | st.integers(), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["type", "text", "fields", "elements", "action_id"]), inner,
                                      max_size=4)))  # fmt: skip
def test_any_blocks_render_as_a_card_or_nothing(blocks: object) -> None:
    card = _card(blocks, {}, {})
    assert card is None or set(card) == {"title", "lines", "fields", "context", "buttons"}
