"""Forwarded messages and replies say so: "[forwarded from X]", "[reply to: ...]"; a Telegram kind that is not
rendered keeps its kind line beside its caption; a WhatsApp reaction names its message; request_welcome (the
customer opened the chat) is logged, not relayed as an unsupported message."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.channels import _render as render
from norbit_connectors.channels.messenger import render_message as messenger_render
from norbit_connectors.channels.telegram import parse_update
from norbit_connectors.channels.whatsapp import parse_webhook


def _tg(**message: Any) -> dict[str, Any]:
    base = {"message_id": 5, "date": 1, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Z"}}
    return {"update_id": 77, "message": base | message}


def _tg_text(**message: Any) -> str:
    parsed = parse_update(_tg(**message))
    assert parsed is not None
    return parsed.text


def test_telegram_forwards_and_replies_are_marked() -> None:
    user = {"type": "user", "date": 1, "sender_user": {"id": 1, "first_name": "Ann", "last_name": "Smith"}}
    assert _tg_text(text="look", forward_origin=user) == "[forwarded from Ann Smith]\nlook"
    hidden = {"type": "hidden_user", "date": 1, "sender_user_name": "Bob"}
    assert _tg_text(text="x", forward_origin=hidden) == "[forwarded from Bob]\nx"
    channel = {"type": "channel", "date": 1, "chat": {"id": -1, "title": "News"}, "message_id": 3}
    assert _tg_text(text="x", forward_origin=channel) == "[forwarded from News]\nx"
    replied = {"message_id": 4, "date": 1, "chat": {"id": 42}, "text": "When do you open?"}
    assert _tg_text(text="at 9?", reply_to_message=replied) == "[reply to: When do you open?]\nat 9?"
    assert _tg_text(text="yes", reply_to_message=replied, quote={"text": "open", "position": 10}) == (
        "[reply to: open]\nyes"
    )
    assert _tg_text(text="nice", reply_to_story={"chat": {"id": 1}, "id": 2}) == "[reply to a story]\nnice"


def test_a_telegram_kind_not_rendered_keeps_its_line_beside_its_caption() -> None:
    text = _tg_text(paid_media={"star_count": 5, "paid_media": []}, caption="exclusive")
    assert text == "[unsupported message: paid_media]\nexclusive"


def _wa(message: dict[str, Any]) -> dict[str, Any]:
    base = {"from": "491700000001", "id": "wamid.A", "timestamp": "1"}
    value = {"metadata": {"phone_number_id": "1"}, "messages": [base | message]}
    return {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]}


def _wa_text(message: dict[str, Any]) -> str:
    [parsed] = parse_webhook(_wa(message), phone_number_id="1")
    return parsed.text


def test_whatsapp_forwards_replies_and_reactions_are_marked() -> None:
    text = {"type": "text", "text": {"body": "hi"}}
    assert _wa_text(text | {"context": {"forwarded": True}}) == "[forwarded]\nhi"
    assert _wa_text(text | {"context": {"frequently_forwarded": True}}) == "[forwarded many times]\nhi"
    assert _wa_text(text | {"context": {"from": "1", "id": "wamid.Q"}}) == "[reply to an earlier message]\nhi"
    reaction = {"type": "reaction", "reaction": {"message_id": "wamid.Q", "emoji": "👍"}}
    assert _wa_text(reaction) == "[reaction 👍 to message wamid.Q]"


def test_whatsapp_request_welcome_is_logged_not_relayed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert parse_webhook(_wa({"type": "request_welcome"}), phone_number_id="1") == []
    assert any("request_welcome" in r.getMessage() for r in caplog.records)


def test_messenger_replies_and_story_replies_are_marked() -> None:
    text, _ = messenger_render({"mid": "m", "text": "yes", "reply_to": {"mid": "m0"}})
    assert text == "[reply to an earlier message]\nyes"
    story = {"mid": "m", "text": "love it", "reply_to": {"story": {"url": "https://cdn.example/s", "id": "9"}}}
    text, _ = messenger_render(story)
    assert text == "[reply to a story]\nhttps://cdn.example/s\nlove it"


@given(st.text(max_size=300))
def test_context_lines_are_one_short_line(value: str) -> None:
    for line in (render.forwarded_line(value), render.reply_line(value)):
        assert "\n" not in line and len(line) <= 100 and line.startswith("[") and line.endswith("]")
