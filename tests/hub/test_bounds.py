"""The pure checks behind the hub's calls: id and user-field bounds, dead-letter reasons, callbacks, groups."""

from __future__ import annotations

import functools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import Conversation, UsageError, User
from norbit_connectors._callbacks import _MAX_DEPTH, is_async_callable
from norbit_connectors._groups import lone_exception
from norbit_connectors._models import to_id
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
from norbit_connectors.slack._blocks import JOIN_ACTION_ID, NOTICE_BLOCK_ID, notice_blocks
from norbit_connectors.slack._connector import METADATA_EVENT_TYPE

CONTROL = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
good_chars = st.characters(blacklist_categories=("Cc", "Cs"))
good_ids = st.text(good_chars, min_size=1, max_size=MAX_ID_LENGTH)


#: Any text at all, lone surrogates and control characters included, short and long.
any_text = st.text(st.characters(blacklist_categories=()), max_size=MAX_ID_LENGTH + 40)


def _join_value(conversation_id: str) -> object:
    blocks = notice_blocks(
        conversation_id=conversation_id,
        user_name="Zoë",
        user_fields=[],
        first_message="hello",
        channel_id="C0123456789",
        channel_name="zoe",
        team_id="T0123456789",
        department_name=None,
    )
    (actions,) = [b for b in blocks if b.get("block_id") == NOTICE_BLOCK_ID]
    (join,) = [e for e in actions["elements"] if e.get("action_id") == JOIN_ACTION_ID]
    return join["value"]


@given(st.one_of(good_ids, any_text))
def test_every_id_accepted_fits_every_store_and_slack(value: str) -> None:
    # Whatever id_problem lets through, the stores and Slack can carry; what it refuses, check_id refuses.
    if id_problem(value) is not None:
        with pytest.raises(UsageError):
            check_id(value, "Conversation.id")
        return
    assert check_id(value, "Conversation.id") == value
    encoded = value.encode("utf-8")  # no lone surrogate: every UTF-8 database can store it
    assert b"\x00" not in encoded  # PostgreSQL text cannot hold NUL
    # The notice card's Join button carries the id whole (the builder refuses what Block Kit would not take).
    assert _join_value(value) == value
    # Two ids (conversation and message) in Slack metadata, JSON-escaped as the client sends them.
    metadata = {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"conversation_id": value, "message_id": value, "part": 99},
    }
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


class Renamed(int):
    """An int that prints as something else: its id is still its value in decimal."""

    def __str__(self) -> str:
        return "not-the-value"

    def __repr__(self) -> str:
        return "Renamed()"

    def __format__(self, spec: str) -> str:
        return "formatted"


@given(st.integers(-(10**40), 10**40))
def test_an_int_subclass_is_keyed_by_its_value(value: int) -> None:
    assert to_id(Renamed(value)) == to_id(value) == str(value)
    assert check_id(Renamed(value), "conversation_id") == str(value)
    assert Conversation(id=Renamed(value), user=User(id=Renamed(value), name="Z")) == Conversation(
        id=value, user=User(id=value, name="Z")
    )


@pytest.mark.parametrize("value", [10**5000, -(10**5000), Renamed(10**5000)], ids=["huge", "negative", "subclass"])
def test_an_int_too_long_to_print_is_a_usage_error(value: int) -> None:
    with pytest.raises(UsageError, match=f"^conversation_id must be at most {MAX_ID_LENGTH} characters"):
        check_id(value, "conversation_id")


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


def _hops(depth: int, end: object) -> object:
    """An object whose class's __call__ is an object whose class's __call__ is ... ``end``: ``depth`` hops."""
    value = end
    for i in range(depth):
        value = type(f"Hop{i}", (), {"__call__": value})()
    return value


@given(st.integers(0, _MAX_DEPTH - 2), st.booleans(), st.booleans())
def test_chains_of_partials_and_calls_keep_the_answer(depth: int, is_async: bool, partials: bool) -> None:
    end: object = _coroutine if is_async else _plain
    if partials:
        # CPython flattens a partial of a partial: only a class's __call__ makes a hop.
        end = functools.partial(end, 1)  # type: ignore[call-overload]
    assert is_async_callable(_hops(depth, end)) is is_async


def test_a_chain_too_long_or_a_cycle_is_refused_without_hanging() -> None:
    assert is_async_callable(_hops(_MAX_DEPTH - 1, _coroutine))
    assert not is_async_callable(_hops(_MAX_DEPTH, _coroutine))

    class Cycle:
        pass

    Cycle.__call__ = Cycle()  # type: ignore[assignment,method-assign]
    assert not is_async_callable(Cycle())


def test_lone_exception_takes_off_one_layer_only() -> None:
    inner = ValueError("x")
    assert lone_exception(ExceptionGroup("g", [inner])) is inner
    nested = ExceptionGroup("host", [inner])
    assert lone_exception(ExceptionGroup("g", [nested])) is nested
    assert lone_exception(ExceptionGroup("g", [inner, KeyError("y")])) is None
    assert lone_exception(inner) is None
