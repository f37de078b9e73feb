"""The pure checks behind the hub's calls: id and user-field bounds, dead-letter reasons, callbacks, groups."""

from __future__ import annotations

import functools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import UsageError
from norbit_connectors._callbacks import is_async_callable
from norbit_connectors._groups import lone_exception
from norbit_connectors._reasons import MAX_REASON_LENGTH, clean_reason
from norbit_connectors._validate import (
    MAX_DETAIL_VALUE_LENGTH,
    MAX_DETAILS,
    MAX_ID_LENGTH,
    check_id,
    details_problem,
    id_problem,
    text_problem,
)

#: The Join button's value limit (Block Kit) and what the ids may take of a message's metadata.
JOIN_VALUE_LIMIT = 2000

CONTROL = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
good_chars = st.characters(blacklist_categories=("Cc", "Cs"))
good_ids = st.text(good_chars, min_size=1, max_size=MAX_ID_LENGTH)


@given(good_ids)
def test_ids_within_bounds_pass_and_fit_every_store_and_slack(value: str) -> None:
    assert id_problem(value) is None
    assert check_id(value, "Conversation.id") == value
    encoded = value.encode("utf-8")  # no lone surrogate: every UTF-8 database can store it
    assert b"\x00" not in encoded  # PostgreSQL text cannot hold NUL
    assert len(value) <= JOIN_VALUE_LIMIT
    # Two ids (conversation and message) in Slack metadata, JSON-escaped as the client sends them.
    metadata = {"event_type": "norbit", "event_payload": {"conversation_id": value, "message_id": value, "part": 99}}
    assert len(json.dumps(metadata)) <= 3 * 1024
    assert len(json.dumps(metadata, ensure_ascii=False).encode()) <= 1200


@given(st.integers())
def test_integer_ids_pass_as_their_decimal_text(value: int) -> None:
    text = str(value)
    if len(text) <= MAX_ID_LENGTH:
        assert check_id(value, "agent_id") == text
    else:
        with pytest.raises(UsageError, match=f"agent_id must be at most {MAX_ID_LENGTH} characters"):
            check_id(value, "agent_id")


@given(st.text(good_chars, max_size=60), st.sampled_from(CONTROL) | SURROGATES, st.text(good_chars, max_size=60))
def test_a_control_character_or_lone_surrogate_anywhere_is_refused(before: str, bad: str, after: str) -> None:
    problem = id_problem(before + bad + after)
    assert problem is not None
    assert ("surrogate" if 0xD800 <= ord(bad) <= 0xDFFF else "control character") in problem
    assert f"U+{ord(bad):04X}" in problem
    with pytest.raises(UsageError, match=r"^Message\.id must not contain"):
        check_id(before + bad + after, "Message.id")


@given(st.text(good_chars, min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH * 80))
def test_overlong_ids_are_refused_with_the_limit_and_not_echoed(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_id(value, "Conversation.id")
    message = str(caught.value)
    assert f"at most {MAX_ID_LENGTH} characters (it has {len(value)})" in message
    assert len(message) < 200


@pytest.mark.parametrize("value", ["", 1.5, None, True, b"42"])
def test_empty_ids_and_other_types_are_refused(value: object) -> None:
    with pytest.raises(UsageError, match=r"^conversation_id must"):
        check_id(value, "conversation_id")


@given(st.text(good_chars | st.sampled_from("\n\r\t"), max_size=300))
def test_text_fields_allow_line_breaks_and_tabs(value: str) -> None:
    assert text_problem(value, limit=300) is None
    assert text_problem(value + "x" * 301, limit=300) is not None


@given(st.dictionaries(st.text(good_chars, max_size=20), st.text(good_chars, max_size=50), max_size=MAX_DETAILS))
def test_details_within_bounds_pass(details: dict[str, str]) -> None:
    assert details_problem(details) is None


@given(st.integers(MAX_DETAILS + 1, MAX_DETAILS * 3))
def test_too_many_details_are_refused(count: int) -> None:
    problem = details_problem({f"k{i}": "v" for i in range(count)})
    assert problem == f"must have at most {MAX_DETAILS} entries (it has {count})"


def test_a_detail_value_too_long_or_with_a_nul_is_refused() -> None:
    assert "at most 1000" in (details_problem({"location": "x" * (MAX_DETAIL_VALUE_LENGTH + 1)}) or "")
    assert "control character (U+0000)" in (details_problem({"plan": "pro\x00"}) or "")
    assert "surrogate" in (details_problem({"\udc80": "v"}) or "")


# -- dead-letter reasons -----------------------------------------------------------------------------------

token_chars = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), min_size=24)
secrets = st.one_of(
    token_chars.map(lambda t: f"xoxb-1234-{t}"),
    token_chars.map(lambda t: f"xoxp-{t}"),
    token_chars.map(lambda t: f"xapp-1-{t}"),
    st.tuples(st.integers(10_000, 10**10), token_chars).map(lambda p: f"{p[0]}:{p[1]}"),
)
frames = st.sampled_from(
    [
        "POST https://api.telegram.org/bot{}/sendMessage failed",
        "Authorization: Bearer {}",
        "GET https://graph.facebook.com/v21.0/me?access_token={}&x=1",
        "token={} was refused",
        "invalid_auth for {}",
        "{}",
    ]
)
prose = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(frames, secrets, prose)
def test_reasons_lose_every_token_they_quote(frame: str, secret: str, around: str) -> None:
    text = around + frame.format(secret) + around
    cleaned = clean_reason(text)
    core = secret.split(":")[-1].split("-")[-1]
    assert secret not in cleaned
    assert cleaned.count(core) < text.count(core)
    assert "***" in cleaned
    assert clean_reason(cleaned) == cleaned


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=5000))
def test_reasons_are_bounded(text: str) -> None:
    assert len(clean_reason(text)) <= MAX_REASON_LENGTH


@given(st.from_regex(re.compile(r"[A-Za-z ]{0,80}:? ?[a-z_]{0,30}"), fullmatch=True))
def test_plain_reasons_are_kept(text: str) -> None:
    # Error codes and prose without credentials pass unchanged ("PermissionDenied: missing_scope").
    if not re.search(r"(?i)\b(bearer|basic|bot|oauth)\s|authorization", text):
        assert clean_reason(text) == text


# -- callbacks and groups ----------------------------------------------------------------------------------


async def _coroutine(*args: object) -> None:
    return None


def _plain(*args: object) -> None:
    return None


@given(st.integers(0, 20), st.booleans())
def test_partials_nest_without_changing_the_answer(depth: int, is_async: bool) -> None:
    value: object = _coroutine if is_async else _plain
    for _ in range(depth):
        value = functools.partial(value, 1)  # type: ignore[call-overload]
    assert is_async_callable(value) is is_async


def test_lone_exception_takes_off_one_layer_only() -> None:
    inner = ValueError("x")
    assert lone_exception(ExceptionGroup("g", [inner])) is inner
    nested = ExceptionGroup("host", [inner])
    assert lone_exception(ExceptionGroup("g", [nested])) is nested
    assert lone_exception(ExceptionGroup("g", [inner, KeyError("y")])) is None
    assert lone_exception(inner) is None
