from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import InvalidRequest
from norbit_connectors.slack._inbound import (
    Action,
    BlockActions,
    ChannelArchived,
    ChannelUnarchived,
    EventCallback,
    FileRef,
    Inbound,
    MemberJoined,
    MessageChanged,
    MessageDeleted,
    MessageEvent,
    OtherEvent,
    SlashCommand,
    UnknownPayload,
    UrlVerification,
    is_human_message,
    parse_request,
)

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "slack-reference" / "samples"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

EXPECTED_EVENT_TYPES = {
    "AppRateLimitedPayload.json": OtherEvent,
    "ChannelArchivePayload.json": ChannelArchived,
    "ChannelDeletedPayload.json": OtherEvent,
    "ChannelRenamePayload.json": OtherEvent,
    "ChannelUnarchivePayload.json": ChannelUnarchived,
    "GroupArchivePayload.json": ChannelArchived,
    "GroupUnarchivePayload.json": ChannelUnarchived,
    "MemberJoinedChannelPayload.json": MemberJoined,
    "MessageBotPayload.json": MessageEvent,
    "MessageChangedPayload.json": MessageChanged,
    "MessageChannelArchivePayload.json": MessageEvent,
    "MessageChannelJoinPayload.json": MessageEvent,
    "MessageDeletedPayload.json": MessageDeleted,
    "MessageFileSharePayload.json": MessageEvent,
    "MessagePayload.json": MessageEvent,
}


def event_sample(name: str, **event_changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "events" / name).read_text())
    # The samples use "" as a placeholder everywhere, the envelope type included.
    data["type"] = "event_callback"
    data["event"].update(event_changes)
    return data


def post_json(data: Any) -> Inbound:
    return parse_request("application/json; charset=utf-8", json.dumps(data).encode())


def test_the_samples_are_there() -> None:
    names = {p.name for p in (SAMPLES / "events").glob("*.json")}
    assert names
    assert names <= set(EXPECTED_EVENT_TYPES)


@pytest.mark.parametrize("path", sorted((SAMPLES / "events").glob("*.json")), ids=lambda p: p.name)
def test_every_event_sample_parses(path: Path) -> None:
    parsed = post_json(event_sample(path.name))
    assert isinstance(parsed, EventCallback)
    assert isinstance(parsed.event, EXPECTED_EVENT_TYPES[path.name])


def test_message_sample_fields() -> None:
    data = event_sample(
        "MessagePayload.json",
        channel="C1",
        user="U1",
        text="hi <@U2>",
        ts="1.000100",
        thread_ts="1.000000",
        bot_id=None,
        metadata={"event_type": "norbit_message", "event_payload": {"conversation_id": "c1"}},
    )
    data.update(event_id="Ev1", event_time=1700000000, team_id="T1")
    parsed = post_json(data)
    assert isinstance(parsed, EventCallback)
    assert (parsed.event_id, parsed.event_time, parsed.team_id) == ("Ev1", 1700000000, "T1")
    event = parsed.event
    assert isinstance(event, MessageEvent)
    assert (event.channel, event.user, event.text, event.ts, event.thread_ts) == (
        "C1",
        "U1",
        "hi <@U2>",
        "1.000100",
        "1.000000",
    )
    assert event.subtype is None
    assert event.bot_id is None
    assert event.metadata_event_type == "norbit_message"
    assert event.metadata_payload == {"conversation_id": "c1"}
    assert is_human_message(event, bot_user_id="UBOT")
    assert not is_human_message(event, bot_user_id="U1")


def test_file_share_sample() -> None:
    parsed = post_json(event_sample("MessageFileSharePayload.json", user="U1", channel="C1", ts="2.0"))
    assert isinstance(parsed, EventCallback)
    event = parsed.event
    assert isinstance(event, MessageEvent)
    assert event.subtype == "file_share"
    assert event.files
    assert isinstance(event.files[0], FileRef)
    assert event.files[0].size == 123
    assert is_human_message(event, bot_user_id="UBOT")


def test_bot_and_system_messages_are_not_human() -> None:
    bot = post_json(event_sample("MessageBotPayload.json", bot_id="B1", ts="1.0"))
    assert isinstance(bot, EventCallback)
    assert not is_human_message(bot.event, bot_user_id="UBOT")
    join = post_json(event_sample("MessageChannelJoinPayload.json", user="U1"))
    assert isinstance(join, EventCallback)
    assert isinstance(join.event, MessageEvent)
    assert join.event.subtype == "channel_join"
    assert not is_human_message(join.event, bot_user_id="UBOT")
    archived = post_json(event_sample("ChannelArchivePayload.json", channel="C1", user="U1"))
    assert isinstance(archived, EventCallback)
    assert archived.event == ChannelArchived(channel="C1", user="U1")
    assert not is_human_message(archived.event, bot_user_id="UBOT")


def test_changed_deleted_unarchived_joined() -> None:
    data = event_sample("MessageChangedPayload.json", channel="C1")
    data["event"]["message"].update(ts="5.0", text="new", user="U1")
    data["event"]["previous_message"].update(text="old")
    parsed = post_json(data)
    assert isinstance(parsed, EventCallback)
    assert parsed.event == MessageChanged(channel="C1", ts="5.0", text="new", user="U1", previous_text="old")

    parsed = post_json(event_sample("MessageDeletedPayload.json", channel="C1", deleted_ts="5.0"))
    assert isinstance(parsed, EventCallback)
    assert isinstance(parsed.event, MessageDeleted)
    assert (parsed.event.channel, parsed.event.deleted_ts) == ("C1", "5.0")

    parsed = post_json(event_sample("GroupUnarchivePayload.json", channel="G1", actor_id="U2"))
    assert isinstance(parsed, EventCallback)
    assert parsed.event == ChannelUnarchived(channel="G1", user="U2")

    parsed = post_json(event_sample("MemberJoinedChannelPayload.json", channel="C1", user="U3", inviter="U1"))
    assert isinstance(parsed, EventCallback)
    assert isinstance(parsed.event, MemberJoined)
    assert (parsed.event.user, parsed.event.inviter) == ("U3", "U1")


def test_url_verification_and_unknown_types() -> None:
    parsed = post_json({"type": "url_verification", "token": "x", "challenge": "abc"})
    assert parsed == UrlVerification(challenge="abc")
    assert post_json({"type": "app_rate_limited", "minute_rate_limited": 1}) == UnknownPayload(type="app_rate_limited")


def test_slash_command_sample() -> None:
    fields = json.loads((SAMPLES / "app-backend" / "SlashCommandPayload.json").read_text())
    fields.update(command="/archive", text="", user_id="U1", channel_id="C1", response_url="https://r")
    body = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}).encode()
    parsed = parse_request(FORM, body)
    assert isinstance(parsed, SlashCommand)
    assert (parsed.command, parsed.text, parsed.user_id, parsed.channel_id) == ("/archive", "", "U1", "C1")
    assert parsed.response_url == "https://r"


def test_block_actions_sample() -> None:
    payload = json.loads((SAMPLES / "app-backend" / "BlockActionPayload.json").read_text())
    payload["user"].update(id="U1", username="ann")
    payload["channel"].update(id="C1")
    payload["container"].update(message_ts="9.0")
    payload["actions"][0].update(action_id="norbit_join", block_id="norbit_notice", value="conv-1", type="button")
    parsed = parse_request(FORM, urlencode({"payload": json.dumps(payload)}).encode())
    assert isinstance(parsed, BlockActions)
    assert (parsed.user_id, parsed.user_name, parsed.channel_id, parsed.message_ts) == ("U1", "ann", "C1", "9.0")
    assert parsed.actions[0] == Action(action_id="norbit_join", block_id="norbit_notice", value="conv-1", type="button")


def test_other_interactivity_is_unknown() -> None:
    body = urlencode({"payload": json.dumps({"type": "view_submission"})}).encode()
    assert parse_request(FORM, body) == UnknownPayload(type="view_submission")
    assert parse_request(FORM, b"ssl_check=1&token=x") == UnknownPayload(type="ssl_check")


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (JSON, b"{", "not valid JSON"),
        (JSON, b"[]", "JSON object"),
        (JSON, b'{"no": "type"}', "'type'"),
        (JSON, b'{"type": "url_verification"}', "'challenge'"),
        (JSON, b'{"type": "event_callback", "event_id": "E"}', "'event'"),
        (JSON, b'{"type": "event_callback", "event_id": "E", "event": {"type": "message"}}', "'channel'"),
        (JSON, b"\xff\xfe", "UTF-8"),
        ("text/plain", b"hello", "Content-Type"),
        (FORM, b"a=1", "neither"),
        (FORM, b"payload=%7B", "not valid JSON"),
        (FORM, b"command=%2Fx&user_id=U1", "'channel_id'"),
        (FORM, b"payload=%FF", "UTF-8"),
    ],
)
def test_malformed_bodies(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        parse_request(content_type, body)
    assert info.value.status == 400


def test_missing_content_type_is_sniffed() -> None:
    assert parse_request(None, b' {"type":"url_verification","challenge":"c"}') == UrlVerification(challenge="c")
    assert isinstance(parse_request(None, b"command=%2Fa&user_id=U&channel_id=C"), SlashCommand)


def test_thread_replies_are_human() -> None:
    reply = MessageEvent(channel="C", ts="2", user="U1", thread_ts="1", text="x")
    assert is_human_message(reply, bot_user_id="UBOT")
    broadcast = MessageEvent(channel="C", ts="2", user="U1", thread_ts="1", subtype="thread_broadcast")
    assert is_human_message(broadcast, bot_user_id="UBOT")
    assert not is_human_message(MessageEvent(channel="C", ts="2", user=None), bot_user_id=None)
    assert not is_human_message(OtherEvent(type="reaction_added"), bot_user_id=None)


def _outcome(content_type: str | None, body: bytes) -> Inbound | None:
    try:
        return parse_request(content_type, body)
    except InvalidRequest as exc:
        status = exc.status
    assert status == 400
    return None


CONTENT_TYPES = st.sampled_from([JSON, FORM, None, "text/plain", "APPLICATION/JSON; charset=utf-8"]) | st.text()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "type",
        "event",
        "event_id",
        "event_time",
        "channel",
        "user",
        "ts",
        "text",
        "subtype",
        "files",
        "message",
        "previous_message",
        "deleted_ts",
        "metadata",
        "challenge",
        "team_id",
        "bot_id",
        "thread_ts",
        "actions",
        "container",
        "action_id",
        "id",
        "size",
    ]
)
TYPES = st.sampled_from(
    [
        "event_callback",
        "url_verification",
        "message",
        "message_changed",
        "message_deleted",
        "channel_archive",
        "group_unarchive",
        "member_joined_channel",
        "block_actions",
        "file_share",
        "button",
    ]
)
slackish = st.recursive(
    st.none() | st.integers() | TYPES | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=8),
    max_leaves=30,
)


@given(CONTENT_TYPES, st.binary())
def test_arbitrary_bytes_never_crash(content_type: str | None, body: bytes) -> None:
    _outcome(content_type, body)


@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    _outcome(JSON, json.dumps(value).encode())
    _outcome(FORM, urlencode({"payload": json.dumps(value)}).encode())


@given(st.dictionaries(KEYS, slackish, max_size=8), TYPES, slackish)
def test_slack_shaped_json_never_crashes(data: dict[str, Any], body_type: str, event: Any) -> None:
    data["type"] = body_type
    data.setdefault("event", event)
    result = _outcome(JSON, json.dumps(data).encode())
    if isinstance(result, EventCallback):
        is_human_message(result.event, bot_user_id="UBOT")
    _outcome(FORM, urlencode({"payload": json.dumps(data)}).encode())


@given(st.dictionaries(st.sampled_from(["command", "text", "user_id", "channel_id", "payload", "x"]), st.text()))
def test_arbitrary_forms_never_crash(fields: dict[str, str]) -> None:
    result = _outcome(FORM, urlencode(fields).encode())
    if isinstance(result, SlashCommand):
        assert result.command == fields["command"]
