"""Files shared in Slack are fetched with the bot token only from Slack: forged file URLs, local files and
redirects get no request and no token, and the agent's answer still reaches the customer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import Agent, AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConnector, SlackLimiter
from norbit_connectors.slack._files import file_note, may_fetch
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..slack.conftest import Workspace

CONV = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))


class Listener:
    """A plain TCP server on 127.0.0.1 that records every connection and what was sent on it."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test listener", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/files-pri/T1-F1/secret.txt"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1.0)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nleaked")
                except OSError:
                    pass
                self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


async def _share_with_url(workspace: Workspace, url: str) -> list[AgentReply]:
    """Ann shares a file in the conversation's channel; the signed event names ``url`` as the file's address."""
    replies: list[AgentReply] = []

    async def on_agent_reply(reply: AgentReply) -> None:
        replies.append(reply)

    emu = workspace.emu
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    hub = Hub(
        store=MemoryStore(),
        connectors=[slack],
        agents=[Agent(id="ann", name="Ann", email="ann@support.example")],
        on_agent_reply=on_agent_reply,
        # One attempt (four for a transport error, retried at once): a fetch failing the job is a dead letter.
        max_attempts=1,
        retry_base=0.001,
    )
    async with hub:
        await hub.customer_message(CONV, Message(id="m1", text="Hello?"))
        await hub.wait_idle()
        channel = await slack.channel_for(CONV.id)
        assert channel is not None
        emu.join(channel, workspace.ann)
        shared = emu.post_as_user(workspace.ann, channel, "here it is", files=[("report.txt", b"report", "text/plain")])
        event: dict[str, Any] = dict(shared.event)
        event["files"] = [{**event["files"][0], "url_private": url, "url_private_download": url}]
        response = await emu.event_request(event).deliver(slack.handle_http)
        assert response.status == 200
        await hub.wait_idle()
        assert await hub.dead_letters() == []  # the refused fetch did not fail the job: answered the first time
    return replies


def _assert_refused_but_answered(replies: list[AgentReply]) -> None:
    (reply,) = replies
    assert reply.message.text == "here it is\n" + file_note("report.txt")
    (attachment,) = reply.message.attachments
    assert attachment.name == "report.txt"
    assert attachment.content is None


@pytest.mark.anyio
async def test_a_file_url_on_another_host_gets_no_request(workspace: Workspace, listener: Listener) -> None:
    replies = await _share_with_url(workspace, listener.url)
    assert listener.received == []
    _assert_refused_but_answered(replies)


@pytest.mark.anyio
async def test_a_file_url_with_the_emulator_host_but_another_port_gets_no_request(
    workspace: Workspace, listener: Listener
) -> None:
    # Same host as the API (127.0.0.1), another port: another origin.
    assert urlsplit(workspace.emu.base_url).hostname == urlsplit(listener.url).hostname
    replies = await _share_with_url(workspace, listener.url.replace("http://", "https://"))
    assert listener.received == []
    _assert_refused_but_answered(replies)


@pytest.mark.anyio
async def test_a_file_url_does_not_read_local_files(workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "environ"
    secret.write_bytes(b"SLACK_BOT_TOKEN=xoxb-local-secret")
    replies = await _share_with_url(workspace, secret.as_uri())
    _assert_refused_but_answered(replies)
    assert "xoxb-local-secret" not in repr(replies)
    assert all(a.content is None for r in replies for a in r.message.attachments)


@pytest.mark.anyio
async def test_a_redirect_is_not_followed_and_carries_no_token(workspace: Workspace, listener: Listener) -> None:
    url = workspace.emu.redirect_url(listener.url)
    assert may_fetch(url, base_url=workspace.emu.base_url)  # on the emulator's origin: fetched, answered 302
    replies = await _share_with_url(workspace, url)
    assert listener.received == []
    _assert_refused_but_answered(replies)


# ---------------------------------------------------------------------------------------------- the rule (pure)

BASE = "http://127.0.0.1:8000/api/"
_allowed = {("https", "files.slack.com", 443), ("http", "127.0.0.1", 8000)}
_path = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="\\#?@"))


@given(path=_path)
def test_files_slack_com_and_the_api_origin_are_fetched(path: str) -> None:
    assert may_fetch(f"https://files.slack.com/{path}", base_url=BASE)
    assert may_fetch(f"HTTPS://Files.Slack.com:443/{path}", base_url=BASE)
    assert may_fetch(f"http://127.0.0.1:8000/{path}", base_url=BASE)


_prefixes = st.sampled_from(
    [
        "https://files.slack.com",
        "https://files.slack.com.",
        "http://files.slack.com",
        "https://127.0.0.1:8000",
        "http://127.0.0.1:8001",
        "http://127.0.0.1:8000",
        "file://",
        "https://user@files.slack.com",
        "https://files.slack.com@evil.example",
        "https://files.slack.com:444",
        "https://files.slack.com\\@evil.example",
        "ftp://files.slack.com",
        "//files.slack.com",
        "https:files.slack.com",
    ]
)


@given(url=st.text(max_size=80) | st.builds(lambda a, b: a + b, _prefixes, st.text(max_size=30)))
def test_a_fetched_url_connects_only_to_an_allowed_origin(url: str) -> None:
    if not may_fetch(url, base_url=BASE):
        return
    # Where urllib itself would connect, parsed independently of the rule.
    request = Request(url)
    name, sep, port = request.host.rpartition(":")
    if not sep or not port.isdigit():
        name, port = request.host, ""
    scheme = request.type.lower()
    assert (scheme, name.lower(), int(port) if port else {"http": 80, "https": 443}[scheme]) in _allowed
    assert "@" not in urlsplit(url).netloc


@pytest.mark.parametrize(
    "url",
    [
        "file:///proc/self/environ",
        "https://files.slack.com.evil.example/x",
        "https://evil.example/files.slack.com/x",
        "https://user:pw@files.slack.com/x",
        "https://files.slack.com@evil.example/x",
        "https://files.slack.com\\@evil.example/x",
        "http://files.slack.com/x",
        "https://files.slack.com:8443/x",
        "http://127.0.0.1:8001/x",
        "https://127.0.0.1:8000/x",
        "https://files.slack.com/x y",
        "https://files.slack.com:99999/x",
        "data:text/plain,hi",
        "",
    ],
)
def test_forged_file_urls_are_refused(url: str) -> None:
    assert not may_fetch(url, base_url=BASE)


@given(url=st.text(), base=st.text(max_size=40))
def test_may_fetch_never_raises(url: str, base: str) -> None:
    assert may_fetch(url, base_url=base) in (True, False)
