from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import UsageError
from norbit_connectors.slack._blocks import (
    JOIN_ACTION_ID,
    NOTICE_BLOCK_ID,
    OPEN_ACTION_ID,
    channel_link,
    notice_blocks,
    notice_fallback_text,
    truncate_escaped,
)
from norbit_connectors.slack._mrkdwn import escape

ENTITIES = ("&amp;", "&lt;", "&gt;")


def card(**overrides: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {
        "conversation_id": "conv-1",
        "user_name": "Zoë <!channel>",
        "user_fields": [("Email", "zoe@example.com"), ("Browser", "Firefox & co")],
        "first_message": "Hi <@U1>, I need help",
        "channel_id": "C0ZOE",
        "channel_name": "zoe",
        "team_id": "T1",
        "department_name": "Sales",
    }
    args.update(overrides)
    return notice_blocks(**args)


def texts(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in blocks:
        if "text" in block:
            yield block["type"], block["text"]
        for item in block.get("fields", ()):
            yield "field", item
        for item in block.get("elements", ()):
            if block["type"] == "context":
                yield "context", item
            else:
                yield "button", item["text"]


def actions(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    (block,) = [b for b in blocks if b["type"] == "actions"]
    return block


def test_card_layout() -> None:
    blocks = card()
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "actions"]
    assert blocks[0]["text"]["text"] == "New conversation · Sales"
    assert blocks[1]["text"]["text"] == "*Zoë &lt;!channel&gt;* started a conversation in <#C0ZOE> (#zoe)"
    assert blocks[2]["text"]["text"] == "Hi &lt;@U1&gt;, I need help"
    assert [f["text"] for f in blocks[3]["fields"]] == [
        "*Email*\nzoe@example.com",
        "*Browser*\nFirefox &amp; co",
    ]
    block = actions(blocks)
    assert block["block_id"] == NOTICE_BLOCK_ID
    join, link = block["elements"]
    assert join["action_id"] == JOIN_ACTION_ID == "norbit_join"
    assert join["value"] == "conv-1"
    assert link["action_id"] == OPEN_ACTION_ID == "norbit_open"
    assert link["url"] == "https://slack.com/app_redirect?channel=C0ZOE&team=T1"


def test_only_given_fields_and_status_lines() -> None:
    blocks = card(user_fields=[], joined_by=["U1", "U2"], assigned_to="U3", department_name=None)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context", "actions"]
    assert blocks[0]["text"]["text"] == "New conversation"
    assert [e["text"] for e in blocks[3]["elements"]] == ["Joined by <@U1>, <@U2>", "Assigned to <@U3>"]


def test_many_fields_are_split_in_sections_of_ten() -> None:
    blocks = card(user_fields=[(f"k{i}", f"v{i}") for i in range(23)])
    sections = [b for b in blocks if "fields" in b]
    assert [len(s["fields"]) for s in sections] == [10, 10, 3]


def test_link_without_team_and_empty_message() -> None:
    assert channel_link("C1", None) == "https://slack.com/app_redirect?channel=C1"
    blocks = card(first_message="", team_id=None)
    assert blocks[2]["text"]["text"] == "_(no text)_"


@pytest.mark.parametrize("bad", ["", "x" * 2001])
def test_conversation_id_must_fit_the_button(bad: str) -> None:
    with pytest.raises(UsageError):
        card(conversation_id=bad)


def test_fallback_text() -> None:
    assert notice_fallback_text(user_name="Bo <x>", first_message="a & b", department_name="Sales") == (
        "New conversation (Sales) from Bo &lt;x&gt;: a &amp; b"
    )
    assert len(notice_fallback_text(user_name="B", first_message="&" * 1000)) <= 300


LIMITS = {"header": 150, "section": 3000, "field": 2000, "context": 3000, "button": 75}


@given(
    user_name=st.text(),
    first_message=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("<>&"), max_size=5000),
    user_fields=st.lists(st.tuples(st.text(max_size=50), st.text(max_size=2500)), max_size=25),
    department_name=st.none() | st.text(max_size=300),
    joined_by=st.lists(st.text(alphabet="UABC0123456789", min_size=1, max_size=12), max_size=400),
    assigned_to=st.none() | st.text(alphabet="U0123456789", min_size=1, max_size=12),
    channel_name=st.text(max_size=80),
)
def test_every_text_fits_block_kit_limits(
    user_name: str,
    first_message: str,
    user_fields: list[tuple[str, str]],
    department_name: str | None,
    joined_by: list[str],
    assigned_to: str | None,
    channel_name: str,
) -> None:
    blocks = card(
        user_name=user_name,
        first_message=first_message,
        user_fields=user_fields,
        department_name=department_name,
        joined_by=joined_by,
        assigned_to=assigned_to,
        channel_name=channel_name,
    )
    for kind, text in texts(blocks):
        assert 0 < len(text["text"]) <= LIMITS[kind], (kind, len(text["text"]))
        if text["type"] == "mrkdwn":
            # no raw customer markup reaches Slack, only the mentions and the channel link the card adds
            bare = re.sub(r"<[@#][A-Za-z0-9]+>", "", text["text"])
            assert "<" not in bare
            assert ">" not in bare
    sections = [b for b in blocks if "fields" in b]
    assert all(len(s["fields"]) <= 10 for s in sections)
    assert sum(len(s["fields"]) for s in sections) == len(user_fields)
    for element in actions(blocks)["elements"]:
        assert len(element["action_id"]) <= 255
        assert len(element["value"]) <= 2000
    message = blocks[2]["text"]["text"]
    if first_message:
        assert escape(first_message).startswith(message.removesuffix("…"))
    assert user_name == "" or escape(user_name)[:20] in blocks[1]["text"]["text"]


@given(st.text(alphabet="a&<>", max_size=200), st.integers(min_value=6, max_value=100))
def test_truncation_never_cuts_an_entity(raw: str, limit: int) -> None:
    text = escape(raw)
    out = truncate_escaped(text, limit)
    assert len(out) <= limit
    if out != text:
        kept = out.removesuffix("…")
        assert text.startswith(kept)
        for entity in ENTITIES:
            for offset in range(1, len(entity)):
                assert not text.startswith(entity, len(kept) - offset)
