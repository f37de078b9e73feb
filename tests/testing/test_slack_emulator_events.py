"""Requests the emulator sends to an app as Slack does: signed events, slash commands, block actions."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from norbit_connectors.exceptions import InvalidRequest, UsageError
from norbit_connectors.slack._signature import verify_signature
from norbit_connectors.testing._slack_emulator import SlackEmulator, SlackRequest

from .conftest import assert_shaped_like, sample

VECTOR_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
VECTOR_TS = 1531420618
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_sign_reproduces_slacks_official_vector() -> None:
    emu = SlackEmulator(signing_secret=VECTOR_SECRET)
    headers = emu.sign(VECTOR_BODY, timestamp=VECTOR_TS)
    assert headers == {"X-Slack-Request-Timestamp": str(VECTOR_TS), "X-Slack-Signature": VECTOR_SIGNATURE}


def test_signed_requests_verify_with_slack_sdk(emu: SlackEmulator) -> None:
    request = emu.url_verification("challenge-1")
    verifier = SignatureVerifier(emu.signing_secret)
    assert verifier.is_valid_request(request.body, dict(request.headers))
    assert request.payload == {"token": emu.verification_token, "challenge": "challenge-1", "type": "url_verification"}
    stale = request.resign(timestamp=VECTOR_TS)
    assert not verifier.is_valid_request(stale.body, dict(stale.headers))
    forged = request.resign(secret="wrong")
    with pytest.raises(InvalidRequest):
        verify_signature(emu.signing_secret, forged.headers, forged.body)


@pytest.fixture
def user(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.user_token, base_url=emu.base_url, retry_handlers=[])


@pytest.fixture
def room(emu: SlackEmulator) -> tuple[str, str]:
    """A channel with the bot, an agent and the installer; returns (channel id, agent id)."""
    agent = emu.add_user("agent", email="agent@example.com")
    channel = emu.add_channel("support-7", members=[emu.bot_user_id, agent, emu.installer_user_id])
    return channel, agent


def test_user_message_event(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    request = emu.post_as_user(agent, channel, "Hello customer")
    assert request.kind == "event"
    payload = request.payload
    assert payload["type"] == "event_callback"
    assert payload["team_id"] == emu.team_id
    assert payload["api_app_id"] == emu.app_id
    assert payload["event_id"] == request.event_id
    assert payload["authorizations"][0]["user_id"] == emu.bot_user_id
    event = request.event
    assert (event["type"], event["user"], event["text"], event["channel"]) == (
        "message",
        agent,
        "Hello customer",
        channel,
    )
    assert event["channel_type"] == "channel"
    assert event["ts"] == event["event_ts"]
    assert "bot_id" not in event
    assert_shaped_like(payload, "events/MessagePayload.json")
    assert json.loads(request.body) == payload
    assert request.headers["Content-Type"] == "application/json"
    assert emu.messages(channel)[-1]["text"] == "Hello customer"


def test_thread_reply_event_and_bot_sees_it(emu: SlackEmulator, room: tuple[str, str], bot: WebClient) -> None:
    channel, agent = room
    parent = bot.chat_postMessage(channel=channel, text="New conversation")["ts"]
    request = emu.post_as_user(agent, channel, "On it", thread_ts=parent)
    assert request.event["thread_ts"] == parent
    assert request.event["parent_user_id"] == emu.bot_user_id
    assert_shaped_like(request.payload, "events/MessagePayload.json")
    replies = bot.conversations_replies(channel=channel, ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["New conversation", "On it"]
    with pytest.raises(UsageError):
        emu.post_as_user(agent, channel, "x", thread_ts="1.000001")


def test_file_share_event(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    request = emu.post_as_user(agent, channel, "see attached", files=[("photo.png", b"\x89PNG", "image/png")])
    event = request.event
    assert event["subtype"] == "file_share"
    assert event["files"][0]["name"] == "photo.png"
    assert event["files"][0]["mimetype"] == "image/png"
    assert event["upload"] is True
    assert_shaped_like(request.payload, "events/MessageFileSharePayload.json")


def test_message_changed_and_deleted_events(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    ts = emu.post_as_user(agent, channel, "typo").event["ts"]
    changed = emu.edit_as_user(agent, channel, ts, "fixed")
    assert changed.event["subtype"] == "message_changed"
    assert changed.event["message"]["text"] == "fixed"
    assert changed.event["previous_message"]["text"] == "typo"
    assert changed.event["message"]["edited"]["user"] == agent
    assert_shaped_like(changed.payload, "events/MessageChangedPayload.json")
    deleted = emu.delete_as_user(agent, channel, ts)
    assert deleted.event["subtype"] == "message_deleted"
    assert deleted.event["deleted_ts"] == ts
    assert_shaped_like(deleted.payload, "events/MessageDeletedPayload.json")
    assert emu.messages(channel) == []
    other = emu.add_user("other")
    emu.join(channel, other)
    ts2 = emu.post_as_user(agent, channel, "mine").event["ts"]
    with pytest.raises(UsageError):
        emu.edit_as_user(other, channel, ts2, "not yours")


def test_archive_events(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    public = emu.archive_as_user(agent, channel)
    assert public.event == {
        "type": "channel_archive",
        "channel": channel,
        "user": agent,
        "event_ts": public.event["event_ts"],
    }
    assert_shaped_like(public.payload, "events/ChannelArchivePayload.json")
    assert emu.channels[channel]["is_archived"] is True
    private = emu.add_channel("vip-1", is_private=True, members=[agent, emu.bot_user_id])
    group = emu.archive_as_user(agent, private)
    assert group.event["type"] == "group_archive"
    assert_shaped_like(group.payload, "events/GroupArchivePayload.json")
    with pytest.raises(UsageError):
        emu.post_as_user(agent, channel, "archived")


def test_private_channel_messages_are_group_type(emu: SlackEmulator) -> None:
    agent = emu.add_user("agent")
    private = emu.add_channel("vip-2", is_private=True, members=[agent])
    assert emu.post_as_user(agent, private, "hi").event["channel_type"] == "group"
    with pytest.raises(UsageError):
        emu.post_as_user(emu.installer_user_id, private, "not a member")


def test_retries_keep_event_id_and_add_headers(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    first = emu.post_as_user(agent, channel, "hi")
    retry = first.retry(1, "http_timeout")
    assert retry.event_id == first.event_id
    assert retry.body == first.body
    assert retry.headers["X-Slack-Retry-Num"] == "1"
    assert retry.headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert "X-Slack-Retry-Num" not in first.headers
    verify_signature(emu.signing_secret, retry.headers, retry.body)
    custom = emu.event_request({"type": "app_mention", "text": "hi"}, event_id="Ev123", retry_num=2)
    assert custom.payload["event_id"] == "Ev123"
    assert custom.headers["X-Slack-Retry-Num"] == "2"


def test_api_calls_emit_the_events_slack_would_send(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    channel = bot.conversations_create(name="own-events")["channel"]["id"]
    bot.conversations_invite(channel=channel, users=emu.installer_user_id)
    ts = bot.chat_postMessage(channel=channel, text="notice")["ts"]
    bot.chat_postMessage(channel=channel, text="as agent", username="Ana")
    bot.chat_update(channel=channel, ts=ts, text="notice v2")
    bot.chat_delete(channel=channel, ts=ts)
    bot.conversations_archive(channel=channel)
    user.conversations_unarchive(channel=channel)
    private = bot.conversations_create(name="own-private", is_private=True)["channel"]["id"]
    bot.conversations_invite(channel=private, users=emu.installer_user_id)
    bot.conversations_archive(channel=private)
    user.conversations_unarchive(channel=private)
    events = emu.take_events()
    assert emu.take_events() == []
    kinds = [(r.event["type"], r.event.get("subtype")) for r in events]
    assert kinds == [
        ("message", None),
        ("message", "bot_message"),
        ("message", "message_changed"),
        ("message", "message_deleted"),
        ("channel_archive", None),
        ("channel_unarchive", None),
        ("group_archive", None),
        ("group_unarchive", None),
    ]
    own, customised, changed, deleted, archived, unarchived, group_archived, group_unarchived = events
    assert own.event["bot_id"] == emu.bot_id
    assert own.event["user"] == emu.bot_user_id
    assert_shaped_like(own.payload, "events/MessagePayload.json")
    assert customised.event["username"] == "Ana"
    assert_shaped_like(customised.payload, "events/MessageBotPayload.json")
    assert changed.event["message"]["text"] == "notice v2"
    assert_shaped_like(changed.payload, "events/MessageChangedPayload.json")
    assert_shaped_like(deleted.payload, "events/MessageDeletedPayload.json")
    assert archived.event["user"] == emu.bot_user_id
    assert_shaped_like(archived.payload, "events/ChannelArchivePayload.json")
    assert unarchived.event["user"] == emu.installer_user_id
    assert_shaped_like(unarchived.payload, "events/ChannelUnarchivePayload.json")
    assert_shaped_like(group_archived.payload, "events/GroupArchivePayload.json")
    assert group_unarchived.event["actor_id"] == emu.installer_user_id
    assert_shaped_like(group_unarchived.payload, "events/GroupUnarchivePayload.json")
    for request in events:
        verify_signature(emu.signing_secret, request.headers, request.body)


def test_slash_command_fields(emu: SlackEmulator, room: tuple[str, str]) -> None:
    channel, agent = room
    request = emu.slash_command("/archive", agent, channel, "resolved")
    fields = dict(urllib.parse.parse_qsl(request.body.decode()))
    assert fields["command"] == "/archive"
    assert fields["text"] == "resolved"
    assert fields["user_id"] == agent
    assert fields["channel_id"] == channel
    assert fields["team_id"] == emu.team_id
    assert set(fields) <= set(sample("app-backend/SlashCommandPayload.json"))
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    verify_signature(emu.signing_secret, request.headers, request.body)
    with pytest.raises(UsageError):
        emu.slash_command("archive", agent, channel)


def test_block_action_payload(emu: SlackEmulator, room: tuple[str, str], bot: WebClient) -> None:
    channel, agent = room
    ts = bot.chat_postMessage(channel=channel, text="New conversation")["ts"]
    request = emu.block_action(agent, channel, ts, "join_conversation", value="conv-1")
    form = dict(urllib.parse.parse_qsl(request.body.decode()))
    assert set(form) == {"payload"}
    payload = json.loads(form["payload"])
    assert payload == request.payload
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == agent
    assert payload["container"]["message_ts"] == ts
    assert payload["actions"][0]["action_id"] == "join_conversation"
    assert payload["actions"][0]["value"] == "conv-1"
    assert_shaped_like(payload, "app-backend/BlockActionPayload.json")
    verify_signature(emu.signing_secret, request.headers, request.body)


@attrs.frozen
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _App:
    """A minimal app: verifies signatures, answers url_verification, records what it got."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []

    async def handle_http(self, headers: Mapping[str, str], body: bytes) -> _Response:
        return self.handle(headers, body)

    def handle(self, headers: Mapping[str, str], body: bytes) -> _Response:
        try:
            verify_signature(self.secret, headers, body)
        except InvalidRequest:
            return _Response(401, {}, b"bad signature")
        payload = json.loads(body)
        self.received.append(payload)
        if payload["type"] == "url_verification":
            return _Response(200, {"Content-Type": "text/plain"}, payload["challenge"].encode())
        return _Response(200, {}, b"")


@pytest.mark.anyio
async def test_deliver_to_handle_http(anyio_backend: str) -> None:
    async with SlackEmulator() as emu:
        app = _App(emu.signing_secret)
        response = await emu.url_verification("abc").deliver(app.handle_http)
        assert (response.status, response.body) == (200, b"abc")
        forged = await emu.url_verification("x").resign(secret="nope").deliver(app.handle_http)
        assert forged.status == 401
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        assert bot.auth_test()["ok"]


@pytest.fixture
def app_url() -> Iterator[tuple[str, _App]]:
    app = _App("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            response = app.handle(dict(self.headers.items()), body)
            self.send_response(response.status)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slack/events", app
    finally:
        server.shutdown()
        server.server_close()


def test_post_to_url(emu: SlackEmulator, room: tuple[str, str], app_url: tuple[str, _App]) -> None:
    url, app = app_url
    app.secret = emu.signing_secret
    channel, agent = room
    result = emu.post_as_user(agent, channel, "over http").post(url)
    assert result.status == 200
    assert app.received[-1]["event"]["text"] == "over http"
    assert emu.url_verification("xyz").post(url).body == b"xyz"
    assert emu.url_verification("xyz").resign(secret="bad").post(url).status == 401


@pytest.mark.anyio
async def test_apost_to_url(anyio_backend: str, emu: SlackEmulator, app_url: tuple[str, _App]) -> None:
    url, app = app_url
    app.secret = emu.signing_secret
    request: SlackRequest = emu.url_verification("async")
    result = await request.apost(url)
    assert (result.status, result.body) == (200, b"async")
    assert app.received == [dict(request.payload)]


def test_pytest_fixture(slack_emulator: SlackEmulator) -> None:
    assert slack_emulator.rate_limits == "off"
    bot = WebClient(token=slack_emulator.bot_token, base_url=slack_emulator.base_url, retry_handlers=[])
    assert bot.auth_test()["user_id"] == slack_emulator.bot_user_id
