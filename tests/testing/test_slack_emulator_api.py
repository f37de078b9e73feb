"""The emulator's Web API, driven through the unmodified slack_sdk WebClient."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from norbit_connectors.exceptions import UsageError
from norbit_connectors.testing._slack._api import DEFAULT_BOT_SCOPES
from norbit_connectors.testing._slack_emulator import SlackEmulator

from .conftest import REFERENCE, assert_shaped_like, documented, method_doc


def error_of(call: Callable[[], SlackResponse]) -> dict[str, Any]:
    with pytest.raises(SlackApiError) as info:
        call()
    data = info.value.response.data
    assert isinstance(data, dict)
    assert data["ok"] is False
    return data


def code_of(call: Callable[[], SlackResponse]) -> str:
    return str(error_of(call)["error"])


# ------------------------------------------------------------------ auth


def test_auth_test_identifies_bot_and_user(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    me = bot.auth_test()
    assert me["user_id"] == emu.bot_user_id
    assert me["team_id"] == emu.team_id
    assert me["bot_id"] == emu.bot_id
    assert me["app_id"] == emu.app_id  # a bot token's answer names its app, as Slack's does
    assert_shaped_like(me.data, "api/auth.test.json")
    assert user.auth_test()["user_id"] == emu.installer_user_id
    assert emu.bot_token.startswith("xoxb-")
    assert emu.user_token.startswith("xoxp-")
    assert emu.base_url.endswith("/api/")


def test_redirect_url_answers_a_redirect(emu: SlackEmulator) -> None:
    url = emu.redirect_url("http://127.0.0.1:9/elsewhere")
    assert url.startswith(emu.base_url[: -len("api/")])
    opener = urllib.request.OpenerDirector()
    opener.add_handler(urllib.request.HTTPHandler())
    with opener.open(url) as response:  # no redirect handler: the answer as it came
        assert response.status == 302
        assert response.headers["Location"] == "http://127.0.0.1:9/elsewhere"


def test_missing_and_invalid_tokens(emu: SlackEmulator) -> None:
    anonymous = WebClient(base_url=emu.base_url, retry_handlers=[])
    assert code_of(anonymous.auth_test) == "not_authed"
    wrong = WebClient(token="xoxb-0-nope", base_url=emu.base_url, retry_handlers=[])
    assert code_of(wrong.auth_test) == "invalid_auth"
    assert emu.calls[-1].token_kind is None


def test_token_as_form_argument_is_accepted(emu: SlackEmulator) -> None:
    anonymous = WebClient(base_url=emu.base_url, retry_handlers=[])
    assert anonymous.api_call("auth.test", data={"token": emu.bot_token})["user_id"] == emu.bot_user_id
    assert "token" not in emu.calls[-1].args


def test_token_inside_json_body_is_ignored(emu: SlackEmulator) -> None:
    body = json.dumps({"token": emu.bot_token}).encode()
    request = urllib.request.Request(
        emu.base_url + "auth.test", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request) as response:
        assert json.loads(response.read()) == {"ok": False, "error": "not_authed"}


def test_revoked_token(emu: SlackEmulator, bot: WebClient) -> None:
    emu.revoke_token(emu.bot_token)
    assert code_of(bot.auth_test) == "token_revoked"


def test_unknown_method_is_404(emu: SlackEmulator, bot: WebClient) -> None:
    data = error_of(lambda: bot.api_call("conversations.explode"))
    assert data["error"] == "unknown_method"
    assert emu.calls[-1].status == 404


def test_query_string_arguments_are_merged(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="merged")["channel"]["id"]
    info = bot.api_call("conversations.info", http_verb="GET", params={"channel": channel})
    assert info["channel"]["id"] == channel


def test_missing_scope_reports_needed_and_provided() -> None:
    scopes = DEFAULT_BOT_SCOPES - {"channels:manage", "groups:write"}
    with SlackEmulator(bot_scopes=scopes) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        data = error_of(lambda: bot.conversations_create(name="nope"))
        assert data["error"] == "missing_scope"
        assert data["needed"] == "channels:manage"
        assert set(data["provided"].split(",")) == set(scopes)
        assert_shaped_like(data, "api/conversations.create.json")


def test_scope_depends_on_channel_type() -> None:
    with SlackEmulator(bot_scopes=DEFAULT_BOT_SCOPES - {"groups:write"}) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        assert bot.conversations_create(name="public-ok")["ok"]
        data = error_of(lambda: bot.conversations_create(name="private-no", is_private=True))
        assert (data["error"], data["needed"]) == ("missing_scope", "groups:write")
        private = emu.add_channel("secret", is_private=True, members=[emu.bot_user_id])
        assert error_of(lambda: bot.conversations_archive(channel=private))["needed"] == "groups:write"


def test_scope_checked_for_reads_and_users() -> None:
    with SlackEmulator(bot_scopes={"chat:write"}) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        assert error_of(lambda: bot.users_info(user=emu.installer_user_id))["needed"] == "users:read"
        assert error_of(lambda: bot.users_lookupByEmail(email="a@b.c"))["needed"] == "users:read.email"
        assert code_of(lambda: bot.conversations_history(channel=emu.general_channel_id)) == "missing_scope"


# ------------------------------------------------------------------ conversations


def test_create_returns_channel_shaped_like_slack(emu: SlackEmulator, bot: WebClient) -> None:
    created = bot.conversations_create(name="support-42")
    channel = created["channel"]
    assert channel["name"] == "support-42"
    assert channel["is_private"] is False
    assert channel["is_archived"] is False
    assert channel["creator"] == emu.bot_user_id
    assert channel["is_member"] is True
    assert {"id", "name", "is_channel", "is_private", "is_archived", "created", "creator"} <= set(channel)
    assert_shaped_like(created.data, "api/conversations.create.json")
    assert emu.channels[channel["id"]]["members"] == [emu.bot_user_id]
    assert emu.find_channel("support-42") == emu.channels[channel["id"]]


def test_create_private(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="vip", is_private=True)["channel"]
    assert channel["is_private"] is True
    assert emu.channels[channel["id"]]["is_private"] is True


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "invalid_name_required"),
        ("x" * 81, "invalid_name_maxlength"),
        ("Upper", "invalid_name_specials"),
        ("with space", "invalid_name_specials"),
        ("dot.ted", "invalid_name_specials"),
        ("---", "invalid_name_punctuation"),
    ],
)
def test_create_rejects_invalid_names(bot: WebClient, name: str, code: str) -> None:
    assert documented("conversations.create", code)
    assert code_of(lambda: bot.conversations_create(name=name)) == code
    assert code_of(lambda: bot.api_call("conversations.create", data={"name": name})) == code


def test_create_without_name(bot: WebClient) -> None:
    assert code_of(lambda: bot.api_call("conversations.create")) == "missing_argument"


def test_name_taken_also_by_archived_channels(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="taken")["channel"]["id"]
    assert code_of(lambda: bot.conversations_create(name="taken")) == "name_taken"
    bot.conversations_archive(channel=channel)
    assert code_of(lambda: bot.conversations_create(name="taken")) == "name_taken"
    assert code_of(lambda: bot.conversations_create(name="general")) == "name_taken"


def test_rename(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="old-name")["channel"]["id"]
    bot.conversations_create(name="other")
    renamed = bot.conversations_rename(channel=channel, name="new-name")
    assert renamed["channel"]["name"] == "new-name"
    assert emu.channels[channel]["previous_names"] == ["old-name"]
    assert code_of(lambda: bot.conversations_rename(channel=channel, name="other")) == "name_taken"
    assert code_of(lambda: bot.conversations_rename(channel=channel, name="Bad Name")) == "invalid_name_specials"
    assert code_of(lambda: bot.conversations_rename(channel="C404", name="x")) == "channel_not_found"
    outside = emu.add_channel("not-mine")
    assert code_of(lambda: bot.conversations_rename(channel=outside, name="mine")) == "not_in_channel"
    bot.conversations_archive(channel=channel)
    assert code_of(lambda: bot.conversations_rename(channel=channel, name="later")) == "is_archived"


def test_join_public_and_not_private(emu: SlackEmulator, bot: WebClient) -> None:
    public = emu.add_channel("lobby", members=[emu.installer_user_id])
    joined = bot.conversations_join(channel=public)
    assert joined["channel"]["is_member"] is True
    assert_shaped_like(joined.data, "api/conversations.join.json")
    again = bot.conversations_join(channel=public)
    assert again["warning"] == "already_in_channel"
    assert_shaped_like(again.data, "api/conversations.join.json")
    private = emu.add_channel("hidden", is_private=True, members=[emu.installer_user_id])
    # A private channel the bot is not in is invisible to it.
    assert code_of(lambda: bot.conversations_join(channel=private)) == "channel_not_found"
    emu.join(private, emu.bot_user_id)
    assert code_of(lambda: bot.conversations_join(channel=private)) == "method_not_supported_for_channel_type"
    assert code_of(lambda: bot.conversations_join(channel="C0NOPE")) == "channel_not_found"
    assert code_of(lambda: bot.api_call("conversations.join")) == "channel_not_found"


def test_join_archived(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    channel = user.conversations_create(name="gone")["channel"]["id"]
    user.conversations_archive(channel=channel)
    assert code_of(lambda: bot.conversations_join(channel=channel)) == "is_archived"


def test_invite_rules(emu: SlackEmulator, bot: WebClient) -> None:
    alice = emu.add_user("alice", email="alice@example.com")
    bob = emu.add_user("bob")
    channel = bot.conversations_create(name="inv", is_private=True)["channel"]["id"]
    invited = bot.conversations_invite(channel=channel, users=[alice, bob])
    assert_shaped_like(invited.data, "api/conversations.invite.json")
    assert emu.channels[channel]["members"] == [emu.bot_user_id, alice, bob]
    data = error_of(lambda: bot.conversations_invite(channel=channel, users=alice))
    assert data["error"] == "already_in_channel"
    assert data["errors"] == [{"user": alice, "ok": False, "error": "already_in_channel"}]
    assert_shaped_like(data, "api/conversations.invite.json")
    assert code_of(lambda: bot.conversations_invite(channel=channel, users=emu.bot_user_id)) == "cant_invite_self"
    assert code_of(lambda: bot.conversations_invite(channel=channel, users="U0NOBODY")) == "user_not_found"
    assert code_of(lambda: bot.conversations_invite(channel="C0NOPE", users=alice)) == "channel_not_found"
    assert code_of(lambda: bot.api_call("conversations.invite", data={"channel": channel})) == "invalid_arguments"
    outside = emu.add_channel("outside")
    assert code_of(lambda: bot.conversations_invite(channel=outside, users=alice)) == "not_in_channel"
    bot.conversations_archive(channel=channel)
    carol = emu.add_user("carol")
    assert code_of(lambda: bot.conversations_invite(channel=channel, users=carol)) == "is_archived"


def test_kick(emu: SlackEmulator, bot: WebClient) -> None:
    alice = emu.add_user("alice")
    channel = bot.conversations_create(name="kick")["channel"]["id"]
    bot.conversations_invite(channel=channel, users=alice)
    assert bot.conversations_kick(channel=channel, user=alice)["ok"]
    assert alice not in emu.channels[channel]["members"]
    assert code_of(lambda: bot.conversations_kick(channel=channel, user=alice)) == "not_in_channel"
    assert code_of(lambda: bot.conversations_kick(channel=channel, user=emu.bot_user_id)) == "cant_kick_self"
    assert code_of(lambda: bot.conversations_kick(channel=channel, user="U0NOBODY")) == "user_not_found"


def test_archive_and_unarchive(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    channel = bot.conversations_create(name="lifecycle")["channel"]["id"]
    bot.conversations_invite(channel=channel, users=emu.installer_user_id)
    archived = bot.conversations_archive(channel=channel)
    assert_shaped_like(archived.data, "api/conversations.archive.json")
    assert emu.channels[channel]["is_archived"] is True
    assert code_of(lambda: bot.conversations_archive(channel=channel)) == "already_archived"
    assert code_of(lambda: bot.chat_postMessage(channel=channel, text="late")) == "is_archived"
    # A bot token cannot unarchive; the installing user's token can.
    unarchive_code = code_of(lambda: bot.conversations_unarchive(channel=channel))
    assert unarchive_code == "method_not_supported_for_channel_type"
    assert documented("conversations.unarchive", unarchive_code)
    unarchived = user.conversations_unarchive(channel=channel)
    assert_shaped_like(unarchived.data, "api/conversations.unarchive.json")
    assert emu.channels[channel]["is_archived"] is False
    assert code_of(lambda: user.conversations_unarchive(channel=channel)) == "not_archived"
    assert code_of(lambda: user.conversations_unarchive(channel="C0NOPE")) == "channel_not_found"
    assert bot.chat_postMessage(channel=channel, text="back")["ok"]


def test_archive_rules(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    assert code_of(lambda: user.conversations_archive(channel=emu.general_channel_id)) == "cant_archive_general"
    outside = emu.add_channel("elsewhere")
    assert code_of(lambda: bot.conversations_archive(channel=outside)) == "not_in_channel"


def test_topic_and_purpose(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="topics")["channel"]["id"]
    topic = bot.conversations_setTopic(channel=channel, topic="Customer: Ana")
    assert topic["channel"]["topic"]["value"] == "Customer: Ana"
    assert_shaped_like(topic.data, "api/conversations.setTopic.json")
    purpose = bot.conversations_setPurpose(channel=channel, purpose="Support chat")
    assert purpose["channel"]["purpose"]["value"] == "Support chat"
    assert emu.channels[channel]["topic"] == "Customer: Ana"
    assert code_of(lambda: bot.conversations_setTopic(channel=channel, topic="x" * 251)) == "too_long"
    assert code_of(lambda: bot.api_call("conversations.setTopic", data={"channel": channel})) == "invalid_arguments"


def test_info_and_members(emu: SlackEmulator, bot: WebClient) -> None:
    alice = emu.add_user("alice")
    channel = emu.add_channel("room", members=[emu.bot_user_id, alice, emu.installer_user_id])
    info = bot.conversations_info(channel=channel, include_num_members=True)
    assert info["channel"]["num_members"] == 3
    assert_shaped_like(info.data, "api/conversations.info.json")
    first = bot.conversations_members(channel=channel, limit=2)
    assert first["members"] == [emu.bot_user_id, alice]
    cursor = first["response_metadata"]["next_cursor"]
    second = bot.conversations_members(channel=channel, limit=2, cursor=cursor)
    assert second["members"] == [emu.installer_user_id]
    assert second["response_metadata"]["next_cursor"] == ""
    assert code_of(lambda: bot.conversations_members(channel=channel, cursor="!!")) == "invalid_cursor"
    hidden = emu.add_channel("hidden", is_private=True)
    assert code_of(lambda: bot.conversations_info(channel=hidden)) == "channel_not_found"


# ------------------------------------------------------------------ chat


def test_post_message_shape_and_ts(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="post")["channel"]["id"]
    first = bot.chat_postMessage(channel=channel, text="hello")
    assert first["channel"] == channel
    message = first["message"]
    assert message["bot_id"] == emu.bot_id
    assert message["user"] == emu.bot_user_id
    assert message["text"] == "hello"
    assert "subtype" not in message
    assert_shaped_like(first.data, "api/chat.postMessage.json")
    second = bot.chat_postMessage(channel=channel, text="again")
    for ts in (first["ts"], second["ts"]):
        seconds, micros = ts.split(".")
        assert seconds.isdigit()
        assert len(micros) == 6
        assert micros.isdigit()
    assert float(second["ts"]) > float(first["ts"])
    assert [m["text"] for m in emu.messages(channel)] == ["hello", "again"]
    assert emu.messages(channel)[0]["author"] == "norbit"


def test_post_message_timestamps_increase_with_frozen_clock() -> None:
    with SlackEmulator(clock=lambda: 1_712_345_678.0) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        channel = bot.conversations_create(name="frozen")["channel"]["id"]
        stamps = [bot.chat_postMessage(channel=channel, text=str(i))["ts"] for i in range(3)]
        assert all(ts.startswith("1712345678.") for ts in stamps)
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == 3


def test_post_message_requires_membership(emu: SlackEmulator, bot: WebClient) -> None:
    channel = emu.add_channel("closed", members=[emu.installer_user_id])
    assert code_of(lambda: bot.chat_postMessage(channel=channel, text="hi")) == "not_in_channel"
    assert code_of(lambda: bot.chat_postMessage(channel="C0NOPE", text="hi")) == "channel_not_found"
    assert code_of(lambda: bot.api_call("chat.postMessage", json={"text": "hi"})) == "channel_not_found"
    bot.conversations_join(channel=channel)
    assert bot.chat_postMessage(channel="#closed", text="by name")["channel"] == channel


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_text_rules(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="texts")["channel"]["id"]
    assert code_of(lambda: bot.chat_postMessage(channel=channel)) == "no_text"
    assert code_of(lambda: bot.chat_postMessage(channel=channel, text="x" * 40_001)) == "msg_too_long"
    assert bot.chat_postMessage(channel=channel, text="x" * 40_000)["ok"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    posted = bot.chat_postMessage(channel=channel, blocks=blocks)
    assert posted["message"]["blocks"] == blocks
    assert code_of(lambda: bot.chat_postMessage(channel=channel, blocks=[{"text": "no type"}])) == "invalid_blocks"
    bad_json = {"channel": channel, "blocks": "[not json"}
    assert code_of(lambda: bot.api_call("chat.postMessage", data=bad_json)) == "invalid_blocks_format"


def test_customize_honoured_with_scope(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="custom")["channel"]["id"]
    posted = bot.chat_postMessage(channel=channel, text="hi", username="Ana (agent)", icon_emoji=":wave:")
    assert posted["message"]["username"] == "Ana (agent)"
    assert posted["message"]["icons"] == {"emoji": ":wave:"}
    assert_shaped_like(posted.data, "api/chat.postMessage.json")
    stored = emu.messages(channel)[-1]
    assert stored["author"] == "Ana (agent)"
    assert stored["icons"] == {"emoji": ":wave:"}


def test_customize_silently_ignored_without_scope() -> None:
    with SlackEmulator(bot_scopes=DEFAULT_BOT_SCOPES - {"chat:write.customize"}) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        channel = bot.conversations_create(name="plain")["channel"]["id"]
        posted = bot.chat_postMessage(channel=channel, text="hi", username="Ana", icon_url="https://x/y.png")
        assert "username" not in posted["message"]
        assert "icons" not in posted["message"]
        stored = emu.messages(channel)[-1]
        assert (stored["username"], stored["icons"], stored["author"]) == (None, None, "norbit")


def test_metadata_kept_and_returned_only_on_request(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="meta")["channel"]["id"]
    metadata = {"event_type": "norbit_message", "event_payload": {"conversation_id": "c1"}}
    bot.chat_postMessage(channel=channel, text="a", metadata=metadata)
    as_string = {"channel": channel, "text": "b", "metadata": json.dumps(metadata)}
    bot.api_call("chat.postMessage", data=as_string)
    plain = bot.conversations_history(channel=channel)
    assert all("metadata" not in m for m in plain["messages"])
    full = bot.conversations_history(channel=channel, include_all_metadata=True)
    assert [m["metadata"] for m in full["messages"]] == [metadata, metadata]
    assert_shaped_like(full.data, "api/conversations.history.json")
    assert emu.messages(channel)[0]["metadata"] == metadata
    bad = {"channel": channel, "text": "c", "metadata": {"event_payload": {}}}
    assert code_of(lambda: bot.api_call("chat.postMessage", json=bad)) == "invalid_metadata_format"


def test_threads(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="threads")["channel"]["id"]
    parent = bot.chat_postMessage(channel=channel, text="parent")["ts"]
    reply = bot.chat_postMessage(channel=channel, text="reply", thread_ts=parent)
    assert reply["message"]["thread_ts"] == parent
    assert reply["message"]["parent_user_id"] == emu.bot_user_id
    nested = bot.chat_postMessage(channel=channel, text="nested", thread_ts=reply["ts"])
    assert nested["message"]["thread_ts"] == parent
    history = bot.conversations_history(channel=channel)
    assert [m["text"] for m in history["messages"]] == ["parent"]
    assert history["messages"][0]["reply_count"] == 2
    assert_shaped_like(history.data, "api/conversations.history.json")
    replies = bot.conversations_replies(channel=channel, ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply", "nested"]
    assert emu.messages(channel)[1]["thread_ts"] == parent
    assert code_of(lambda: bot.chat_postMessage(channel=channel, text="x", thread_ts="1.000001")) == (
        "thread_not_found"
    )


def test_history_rules(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    channel = emu.add_channel("readers", members=[emu.installer_user_id])
    assert code_of(lambda: bot.conversations_history(channel=channel)) == "not_in_channel"
    bot.conversations_join(channel=channel)
    stamps = [bot.chat_postMessage(channel=channel, text=str(i))["ts"] for i in range(5)]
    page = bot.conversations_history(channel=channel, limit=2)
    assert [m["text"] for m in page["messages"]] == ["4", "3"]
    assert page["has_more"] is True
    rest = bot.conversations_history(channel=channel, limit=10, cursor=page["response_metadata"]["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["2", "1", "0"]
    window = bot.conversations_history(channel=channel, oldest=stamps[1], latest=stamps[3], inclusive=True)
    assert [m["text"] for m in window["messages"]] == ["3", "2", "1"]
    assert code_of(lambda: bot.conversations_history(channel=channel, oldest="abc")) == "invalid_ts_oldest"
    assert len(user.conversations_history(channel=channel)["messages"]) == 5


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_update_and_delete_own_messages_only(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    channel = bot.conversations_create(name="edits")["channel"]["id"]
    bot.conversations_invite(channel=channel, users=emu.installer_user_id)
    ts = bot.chat_postMessage(channel=channel, text="v1")["ts"]
    updated = bot.chat_update(channel=channel, ts=ts, text="v2")
    assert (updated["ts"], updated["text"], updated["message"]["text"]) == (ts, "v2", "v2")
    assert updated["message"]["edited"]["user"] == emu.bot_user_id
    assert_shaped_like(updated.data, "api/chat.update.json")
    assert emu.messages(channel)[0]["text"] == "v2"
    theirs = user.chat_postMessage(channel=channel, text="user's")["ts"]
    assert code_of(lambda: bot.chat_update(channel=channel, ts=theirs, text="no")) == "cant_update_message"
    assert code_of(lambda: bot.chat_delete(channel=channel, ts=theirs)) == "cant_delete_message"
    assert code_of(lambda: user.chat_delete(channel=channel, ts=ts)) == "cant_delete_message"
    assert code_of(lambda: bot.chat_update(channel=channel, ts="1.000001", text="x")) == "message_not_found"
    assert code_of(lambda: bot.chat_update(channel=channel, ts=ts)) == "no_text"
    deleted = bot.chat_delete(channel=channel, ts=ts)
    assert (deleted["channel"], deleted["ts"]) == (channel, ts)
    assert code_of(lambda: bot.chat_delete(channel=channel, ts=ts)) == "message_not_found"
    assert [m["text"] for m in emu.messages(channel)] == ["user's"]


def test_post_ephemeral(emu: SlackEmulator, bot: WebClient) -> None:
    alice = emu.add_user("alice")
    channel = bot.conversations_create(name="eph")["channel"]["id"]
    assert code_of(lambda: bot.chat_postEphemeral(channel=channel, user=alice, text="x")) == "user_not_in_channel"
    assert code_of(lambda: bot.chat_postEphemeral(channel=channel, user="U0NOBODY", text="x")) == (
        "user_not_in_channel"
    )
    bot.conversations_invite(channel=channel, users=alice)
    sent = bot.chat_postEphemeral(channel=channel, user=alice, text="only you")
    assert_shaped_like(sent.data, "api/chat.postEphemeral.json")
    assert emu.ephemeral_messages()[-1]["text"] == "only you"
    assert emu.messages(channel) == []


def test_reactions(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="react")["channel"]["id"]
    ts = bot.chat_postMessage(channel=channel, text="x")["ts"]
    assert bot.reactions_add(channel=channel, timestamp=ts, name="eyes")["ok"]
    assert code_of(lambda: bot.reactions_add(channel=channel, timestamp=ts, name="eyes")) == "already_reacted"
    assert emu.messages(channel)[0]["reactions"] == {"eyes": [emu.bot_user_id]}


# ------------------------------------------------------------------ users


def test_users(emu: SlackEmulator, bot: WebClient) -> None:
    ana = emu.add_user("ana", email="ana@example.com", real_name="Ana Lima")
    info = bot.users_info(user=ana)
    assert info["user"]["real_name"] == "Ana Lima"
    assert info["user"]["profile"]["email"] == "ana@example.com"
    assert_shaped_like(info.data, "api/users.info.json")
    found = bot.users_lookupByEmail(email="ana@example.com")
    assert found["user"]["id"] == ana
    assert_shaped_like(found.data, "api/users.lookupByEmail.json")
    assert code_of(lambda: bot.users_lookupByEmail(email="nobody@example.com")) == "users_not_found"
    assert code_of(lambda: bot.users_info(user="U0NOBODY")) == "user_not_found"
    assert code_of(lambda: bot.api_call("users.info")) == "user_not_found"
    assert bot.users_getPresence(user=ana)["presence"] == "active"
    emu.set_presence(ana, "away")
    assert bot.users_getPresence(user=ana)["presence"] == "away"


def test_email_hidden_without_email_scope() -> None:
    with SlackEmulator(bot_scopes=DEFAULT_BOT_SCOPES - {"users:read.email"}) as emu:
        bot = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        ana = emu.add_user("ana", email="ana@example.com")
        assert "email" not in bot.users_info(user=ana)["user"]["profile"]


# ------------------------------------------------------------------ files


def test_files_upload_v2_shares_into_channel(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="files")["channel"]["id"]
    done = bot.files_upload_v2(channel=channel, content=b"%PDF-1.4 fake", filename="cv.pdf", title="CV")
    # slack_sdk adds a client-side "file" key; check what the emulator sent.
    assert_shaped_like(
        emu.calls_to("files.completeUploadExternal")[0].response, "api/files.completeUploadExternal.json"
    )
    file_id = done["files"][0]["id"]
    shared = emu.messages(channel)[-1]
    assert shared["files"][0]["id"] == file_id
    assert shared["files"][0]["title"] == "CV"
    assert shared["bot_id"] == emu.bot_id
    assert emu.file_content(file_id) == b"%PDF-1.4 fake"
    history = bot.conversations_history(channel=channel)
    assert history["messages"][0]["files"][0]["name"] == "cv.pdf"
    assert_shaped_like(history.data, "api/conversations.history.json")
    upload_call = emu.calls_to("files.getUploadURLExternal")[0]
    assert upload_call.args["filename"] == "cv.pdf"
    assert_shaped_like(upload_call.response, "api/files.getUploadURLExternal.json")


def test_files_upload_in_thread_and_rules(emu: SlackEmulator, bot: WebClient) -> None:
    channel = bot.conversations_create(name="files-thread")["channel"]["id"]
    parent = bot.chat_postMessage(channel=channel, text="parent")["ts"]
    bot.files_upload_v2(channel=channel, content=b"x", filename="x.txt", thread_ts=parent, initial_comment="see")
    assert emu.messages(channel)[-1]["thread_ts"] == parent
    assert emu.messages(channel)[-1]["text"] == "see"
    outside = emu.add_channel("nofiles")
    with pytest.raises(SlackApiError) as info:
        bot.files_upload_v2(channel=outside, content=b"x", filename="x.txt")
    assert info.value.response["error"] == "not_in_channel"
    assert code_of(lambda: bot.files_getUploadURLExternal(filename="a.txt", length=0)) == "invalid_arguments"
    assert code_of(lambda: bot.api_call("files.getUploadURLExternal", data={"filename": "a"})) == ("missing_argument")
    # Completing before the bytes arrived: the file is not there yet.
    pending = bot.files_getUploadURLExternal(filename="b.txt", length=3)
    files = [{"id": pending["file_id"], "title": "b"}]
    assert code_of(lambda: bot.files_completeUploadExternal(files=files)) == "file_not_found"


def _download(url: str, token: str | None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers)) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_file_download_requires_bearer_token(emu: SlackEmulator, bot: WebClient) -> None:
    agent = emu.add_user("agent")
    channel = bot.conversations_create(name="dl")["channel"]["id"]
    bot.conversations_invite(channel=channel, users=agent)
    event = emu.post_as_user(agent, channel, "here", files=[("notes.txt", b"secret notes", "text/plain")])
    url = event.event["files"][0]["url_private"]
    assert _download(url, emu.bot_token) == (200, b"secret notes")
    assert _download(url + "?download=1", emu.bot_token)[0] == 200
    assert _download(url, None)[0] == 403
    assert _download(url, "xoxb-forged")[0] == 403
    no_read = emu.issue_token(agent, {"chat:write"})
    assert _download(url, no_read)[0] == 403


# ------------------------------------------------------------------ inspection and seeding


def test_calls_are_recorded(emu: SlackEmulator, bot: WebClient, user: WebClient) -> None:
    bot.auth_test()
    user.auth_test()
    code_of(lambda: bot.conversations_info(channel="C0NOPE"))
    calls = emu.calls
    assert [(c.method, c.token_kind, c.ok) for c in calls] == [
        ("auth.test", "bot", True),
        ("auth.test", "user", True),
        ("conversations.info", "bot", False),
    ]
    assert calls[-1].error == "channel_not_found"
    assert calls[-1].args == {"channel": "C0NOPE"}
    assert calls[-1].status == 200
    assert calls[-1].http_method == "POST"
    emu.clear_calls()
    assert emu.calls == []


def test_seeding_validates(emu: SlackEmulator) -> None:
    with pytest.raises(UsageError):
        emu.add_channel("Bad Name")
    with pytest.raises(UsageError):
        emu.add_channel("general")
    with pytest.raises(UsageError):
        emu.add_channel("ok", members=["U0NOBODY"])
    emu.add_user("ana", email="ana@example.com")
    with pytest.raises(UsageError):
        emu.add_user("ana2", email="ana@example.com")
    with pytest.raises(UsageError):
        emu.messages("C0NOPE")
    ana = emu.add_user("ana3")
    channel = emu.add_channel("seeded")
    emu.join("seeded", ana)
    assert emu.channels[channel]["members"] == [ana]
    emu.leave(channel, ana)
    assert emu.channels[channel]["members"] == []


def test_not_started_base_url_is_a_usage_error() -> None:
    emulator = SlackEmulator()
    with pytest.raises(UsageError, match="not started"):
        _ = emulator.base_url
    assert "not started" in repr(emulator)
    assert emulator.bot_token not in repr(emulator)


def test_method_tiers_and_required_args_match_reference() -> None:
    from norbit_connectors.testing._slack._api import METHODS

    tiers = {"Tier 1": 1, "Tier 2": 2, "Tier 3": 3, "Tier 4": 4}
    for name, spec in METHODS.items():
        if not (REFERENCE / "methods" / f"{name}.json").exists():
            continue  # conversations.replies: not in the reference set
        doc = method_doc(name)
        label = doc["rate_limit"]["label"]
        tier = next((value for key, value in tiers.items() if label.startswith(key)), None)
        if tier is not None:
            assert spec.tier == tier, name
        required = {arg for arg, info in doc.get("args", {}).items() if info.get("required")}
        assert required <= set(spec.required), name


def test_async_web_client() -> None:
    # AsyncWebClient runs on aiohttp, which runs on asyncio only: this test drives its own asyncio loop.
    asyncio.run(_async_web_client_round_trip())


async def _async_web_client_round_trip() -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    async with SlackEmulator() as emu:
        client = AsyncWebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        channel = (await client.conversations_create(name="async"))["channel"]["id"]
        assert (await client.conversations_info(channel=channel))["channel"]["name"] == "async"
        posted = await client.chat_postMessage(
            channel=channel, text="hi", metadata={"event_type": "x", "event_payload": {}}
        )
        assert posted["message"]["metadata"]["event_type"] == "x"
        assert (await client.users_lookupByEmail(email="installer@example.com"))["user"]["id"] == emu.installer_user_id


def test_concurrent_posts_keep_strictly_increasing_ts(emu: SlackEmulator, bot: WebClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    channel = bot.conversations_create(name="busy")["channel"]["id"]

    def post(index: int) -> str:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        return str(client.chat_postMessage(channel=channel, text=str(index))["ts"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        stamps = list(pool.map(post, range(24)))
    stored = [m["ts"] for m in emu.messages(channel)]
    assert sorted(stamps) == stored
    assert len(set(stored)) == 24
    assert all(float(a) < float(b) for a, b in itertools.pairwise(stored))
