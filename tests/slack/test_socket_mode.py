"""Socket Mode: the same inbound traffic as the Request URL, over slack_sdk's WebSocket client and the emulator."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import HttpResponse
from norbit_connectors.exceptions import ConfigurationError, PermissionDenied, UsageError
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConnector, SlackLimiter
from norbit_connectors.slack.socket_mode import SocketModeReceiver, ack_payload
from norbit_connectors.store import SQLiteStore
from norbit_connectors.testing._slack._socket import accept_key

from .conftest import Workspace
from .test_inbound import CONV, Host, agent_in_channel, make_hub, open_channel

ROOT = Path(__file__).resolve().parents[2]


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _leftover(before: set[threading.Thread]) -> list[str]:
    """Threads started since ``before`` that are still alive, other than idle worker-thread pools and the
    emulator's own server threads."""
    pools = ("AnyIO worker thread", "Trio thread", "slack-emulator")
    return sorted(t.name for t in _threads() - before if t.is_alive() and not t.name.startswith(pools))


@pytest.mark.anyio
async def test_agent_message_becomes_one_reply_even_when_redelivered(workspace: Workspace, tmp_path: Path) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host, SQLiteStore(tmp_path / "hub.sqlite3")) as (hub, slack, channel):
        before = _threads()
        async with SocketModeReceiver(slack, emu.app_token) as receiver:
            assert receiver.connected
            assert emu.socket_connections == 1
            event = emu.post_as_user(workspace.ann, channel, "Hi <@" + workspace.bob + ">, on it :smile:")
            assert await emu.asocket_deliver(event) is None
            # Slack redelivers an envelope it thinks was lost: same event_id, retry_attempt 1.
            assert await emu.asocket_deliver(event.retry(1, "timeout")) is None
            await hub.wait_idle()
        assert not receiver.connected
        assert _leftover(before) == []
    assert len(host.replies) == 1
    reply = host.replies[0]
    assert reply.conversation_id == CONV.id
    assert reply.message.text == "Hi @bob, on it 😄"
    assert reply.slack_user_id == workspace.ann
    assert len(emu.socket_acks) == 2
    (opened,) = emu.calls_to("apps.connections.open")
    assert opened.ok and opened.http_method == "POST"


@pytest.mark.anyio
async def test_archive_answers_ephemerally_in_the_ack_and_archives_both_sides(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel), SocketModeReceiver(slack, emu.app_token):
        ack = await emu.asocket_deliver(emu.slash_command("/archive", workspace.ann, channel))
        assert ack == {"response_type": "ephemeral", "text": "Archiving this conversation and its channel."}
        await hub.wait_idle()
        state = await hub.conversation(CONV.id)
        # The archive echo from Slack does not call the host a second time.
        echo = emu.event_request({"type": "group_archive", "channel": channel, "user": workspace.ann})
        assert await emu.asocket_deliver(echo) is None
        unlinked = await emu.asocket_deliver(emu.slash_command("/archive", workspace.ann, workspace.main))
        await hub.wait_idle()
    assert emu.channels[channel]["is_archived"]
    assert host.archived == [CONV.id]
    assert state is not None and state.status == "archived"
    assert unlinked is not None and "not linked" in unlinked["text"]


@pytest.mark.anyio
async def test_join_invites_and_updates_the_card(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    hub, slack = make_hub(workspace, host)
    async with hub:
        channel = await open_channel(hub, slack)
        card = [m for m in emu.messages(workspace.main) if m.get("blocks")][-1]
        async with SocketModeReceiver(slack, emu.app_token):
            click = emu.block_action(workspace.ann, workspace.main, card["ts"], JOIN_ACTION_ID, value=CONV.id)
            assert await emu.asocket_deliver(click) is None
            assert await emu.asocket_deliver(click) is None  # a double click changes nothing more
            await hub.wait_idle()
    assert workspace.ann in emu.channels[channel]["members"]
    assert workspace.bob not in emu.channels[channel]["members"]
    updated = next(m for m in emu.messages(workspace.main) if m["ts"] == card["ts"])
    assert f"Joined by <@{workspace.ann}>" in json.dumps(updated["blocks"])


@pytest.mark.anyio
async def test_disconnect_request_reconnects_and_traffic_continues(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with (
        agent_in_channel(workspace, host) as (hub, slack, channel),
        SocketModeReceiver(slack, emu.app_token) as receiver,
    ):
        first = emu.post_as_user(workspace.ann, channel, "before")
        await emu.asocket_deliver(first)
        await anyio.to_thread.run_sync(emu.socket_disconnect)
        assert receiver.connected
        await emu.asocket_deliver(emu.post_as_user(workspace.ann, channel, "after"))
        await emu.asocket_deliver(first.retry(1))  # redelivered on the new connection: still once
        await hub.wait_idle()
    assert [r.message.text for r in host.replies] == ["before", "after"]
    assert emu.socket_connections_opened == 2
    assert len(emu.calls_to("apps.connections.open")) == 2


@pytest.mark.anyio
async def test_envelope_the_hub_cannot_take_is_not_acked(workspace: Workspace) -> None:
    emu = workspace.emu
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))  # in no running hub
    async with SocketModeReceiver(slack, emu.app_token):
        event = emu.post_as_user(workspace.ann, workspace.main, "anyone?")
        with pytest.raises(TimeoutError, match="no ack"):
            await emu.asocket_deliver(event, ack_timeout=0.5)
    assert emu.socket_acks == []


@pytest.mark.anyio
async def test_bad_app_tokens_are_clear_errors(workspace: Workspace) -> None:
    emu = workspace.emu
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    with pytest.raises(ConfigurationError, match="xapp-"):
        SocketModeReceiver(slack, emu.bot_token)
    with pytest.raises(ConfigurationError, match="base_url"):
        SocketModeReceiver(slack, emu.app_token, base_url="slack.com/api")
    before = _threads()
    wrong = "xapp-1-A0-1-not-the-app-token"
    receiver = SocketModeReceiver(slack, wrong)
    with pytest.raises(PermissionDenied) as caught:
        async with receiver:
            pass
    assert caught.value.code == "invalid_auth"
    assert wrong not in str(caught.value) and wrong not in repr(receiver)
    assert emu.app_token not in repr(SocketModeReceiver(slack, emu.app_token))
    assert _leftover(before) == []
    with pytest.raises(UsageError):
        await receiver.start()  # a receiver starts once


@pytest.mark.anyio
async def test_receiver_run_serves_until_cancelled(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        receiver = SocketModeReceiver(slack, emu.app_token)
        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver.run)
            connected = await anyio.to_thread.run_sync(emu.socket_wait_connected)
            await emu.asocket_deliver(emu.post_as_user(workspace.ann, channel, "via run()"))
            await hub.wait_idle()
            tg.cancel_scope.cancel()
    assert connected
    assert [r.message.text for r in host.replies] == ["via run()"]
    assert not receiver.connected


def test_emulator_token_rules_and_request_kinds(workspace: Workspace) -> None:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    emu = workspace.emu
    web = WebClient(base_url=emu.base_url, retry_handlers=[])
    for token, error in ((emu.bot_token, "not_allowed_token_type"), ("xapp-1-nope", "invalid_auth")):
        with pytest.raises(SlackApiError) as caught:
            web.apps_connections_open(app_token=token)
        assert caught.value.response["error"] == error
    with pytest.raises(SlackApiError) as caught:
        WebClient(token=emu.app_token, base_url=emu.base_url, retry_handlers=[]).auth_test()
    assert caught.value.response["error"] == "not_allowed_token_type"
    url = web.apps_connections_open(app_token=emu.app_token)["url"]
    assert url.startswith("ws://127.0.0.1:") and "ticket=" in url
    with pytest.raises(UsageError, match="Socket Mode"):
        emu.socket_deliver(emu.url_verification())
    with pytest.raises(TimeoutError, match="no Socket Mode client"):
        emu.socket_deliver(emu.post_as_user(workspace.ann, workspace.main, "nobody listens"), timeout=0.2)


def test_websocket_accept_key_is_rfc6455s() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(body=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_ack_payload_never_crashes(body: bytes, content_type: str) -> None:
    payload = ack_payload(HttpResponse(status=200, headers={"Content-Type": content_type}, body=body))
    assert payload is None or isinstance(payload, dict)


@given(value=json_values)
def test_ack_payload_is_the_json_object_of_the_answer(value: object) -> None:
    payload = ack_payload(HttpResponse.json(200, value))
    assert payload == (value if isinstance(value, dict) else None)


def test_example_runs_against_the_emulator() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLACK_APP_TOKEN"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "socket_mode.py"), "--demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "agent reply: Hello from Slack" in result.stdout
    assert "/archive answered: Archiving this conversation and its channel." in result.stdout


def _client_frame(opcode: int, data: bytes, *, fin: bool = True) -> bytes:
    """A masked client frame, as RFC 6455 requires of clients."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(data))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    b1, b2 = exact(2)
    assert b2 & 0x80 == 0  # servers never mask
    length = b2 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exact(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exact(8))
    return b1 & 0x0F, exact(length)


def _handshake(url: str) -> tuple[socket.socket, bytes]:
    parts = urllib.parse.urlsplit(url)
    assert parts.port is not None
    sock = socket.create_connection(("127.0.0.1", parts.port), timeout=5)
    key = base64.b64encode(b"0123456789abcdef").decode()
    request = (
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    if head.startswith(b"HTTP/1.1 101"):
        assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in head
    return sock, head


def test_emulator_websocket_speaks_rfc6455(workspace: Workspace) -> None:
    from slack_sdk import WebClient

    emu = workspace.emu
    web = WebClient(base_url=emu.base_url, retry_handlers=[])
    url = web.apps_connections_open(app_token=emu.app_token)["url"]
    sock, head = _handshake(url)
    with sock:
        assert head.startswith(b"HTTP/1.1 101")
        opcode, hello = _read_frame(sock)
        assert opcode == 0x1 and json.loads(hello)["type"] == "hello"
        sock.sendall(_client_frame(0x9, b"are you there"))
        assert _read_frame(sock) == (0xA, b"are you there")
        # An ack split over two frames, with a ping in between, is one message.
        delivered: list[dict[str, object] | None] = []
        request = emu.slash_command("/help", workspace.ann, workspace.main)
        sender = threading.Thread(target=lambda: delivered.append(emu.socket_deliver(request)))
        sender.start()
        opcode, raw = _read_frame(sock)
        envelope = json.loads(raw)
        assert (opcode, envelope["type"], envelope["accepts_response_payload"]) == (0x1, "slash_commands", True)
        assert envelope["payload"]["command"] == "/help"
        ack = json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "x" * 300}}).encode()
        sock.sendall(_client_frame(0x1, ack[:100], fin=False))
        sock.sendall(_client_frame(0x9, b"mid"))
        assert _read_frame(sock) == (0xA, b"mid")
        sock.sendall(_client_frame(0x0, ack[100:]))
        sender.join(timeout=10)
        assert delivered == [{"text": "x" * 300}]
        sock.sendall(_client_frame(0x8, struct.pack("!H", 1000)))
        assert _read_frame(sock) == (0x8, struct.pack("!H", 1000))
    # A ticket is good for one connection; a made-up one for none.
    for bad in (url, url.replace("ticket=", "ticket=0")):
        refused, head = _handshake(bad)
        refused.close()
        assert head.startswith(b"HTTP/1.1 401")


@pytest.mark.anyio
async def test_socket_mode_needs_no_signing_secret(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    hub, slack = make_hub(workspace, host, signing_secret=None)
    assert slack.config.signing_secret is None
    async with hub:
        channel = await open_channel(hub, slack)
        emu.join(channel, workspace.ann)
        async with SocketModeReceiver(slack, emu.app_token):
            assert await emu.asocket_deliver(emu.post_as_user(workspace.ann, channel, "over the socket")) is None
            await hub.wait_idle()
        # The same event over HTTP cannot be verified without the secret: refused, and said why.
        request = emu.post_as_user(workspace.ann, channel, "over HTTP")
        refused = await slack.handle_http(dict(request.headers), request.body)
        await hub.wait_idle()
    assert [reply.message.text for reply in host.replies] == ["over the socket"]
    assert refused.status == 401
    assert b"SlackConfig.signing_secret" in refused.body
    with pytest.raises(ConfigurationError, match="signing_secret is needed to serve a Request URL"):
        slack.asgi_app()
    with pytest.raises(ConfigurationError, match="signing_secret must be"):
        workspace.config(signing_secret="short")
