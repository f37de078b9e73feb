"""Property tests of the emulator's pure rules (names, argument decoding, token buckets)."""

from __future__ import annotations

import json
import string
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from norbit_connectors.testing._slack._ratelimit import RATE_PROFILES, RateLimiter, TokenBucket, retry_after_seconds
from norbit_connectors.testing._slack._rules import (
    ArgError,
    arg_bool,
    arg_int,
    arg_list,
    channel_name_error,
    format_ts,
    parse_blocks,
    parse_metadata,
)
from norbit_connectors.testing._slack_emulator import SlackEmulator


def error_code(call: Callable[[], object]) -> str | None:
    try:
        call()
    except ArgError as error:
        return error.code
    return None


VALID_CHARS = string.ascii_lowercase + string.digits + "-_"
CODES = {
    None,
    "invalid_name",
    "invalid_name_required",
    "invalid_name_maxlength",
    "invalid_name_specials",
    "invalid_name_punctuation",
}


@settings(max_examples=40)
@given(st.text(alphabet=VALID_CHARS, min_size=1, max_size=80).filter(lambda n: any(c.isalnum() for c in n)))
def test_valid_names_accepted(name: str) -> None:
    assert channel_name_error(name) is None


@settings(max_examples=40)
@given(st.text(max_size=120))
def test_any_text_gets_a_known_verdict(name: str) -> None:
    verdict = channel_name_error(name)
    assert verdict in CODES
    if verdict is None:
        assert 0 < len(name) <= 80
        assert name == name.lower()
        assert " " not in name
        assert "." not in name


@settings(max_examples=40)
@given(st.text(alphabet=VALID_CHARS, min_size=81, max_size=200))
def test_long_names_rejected(name: str) -> None:
    assert channel_name_error(name) == "invalid_name_maxlength"


@settings(max_examples=40)
@given(st.text(alphabet=VALID_CHARS, min_size=0, max_size=40), st.sampled_from("ABZ .!#@É€"), st.data())
def test_specials_rejected(prefix: str, bad: str, data: st.DataObject) -> None:
    name = prefix + bad + data.draw(st.text(alphabet=VALID_CHARS, max_size=30))
    assert channel_name_error(name) == "invalid_name_specials"


@settings(max_examples=40)
@given(st.text(alphabet="-_", min_size=1, max_size=80))
def test_punctuation_only_rejected(name: str) -> None:
    assert channel_name_error(name) == "invalid_name_punctuation"


@settings(max_examples=40)
@given(st.one_of(st.none(), st.integers(), st.lists(st.text()), st.dictionaries(st.text(), st.text())))
def test_non_string_names(value: Any) -> None:
    assert channel_name_error(value) == "invalid_name"


@settings(max_examples=40)
@given(st.integers(min_value=0, max_value=10**17))
def test_format_ts_round_trips(micros: int) -> None:
    text = format_ts(micros)
    seconds, fraction = text.split(".")
    assert len(fraction) == 6
    assert int(seconds) * 1_000_000 + int(fraction) == micros


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=40)
@given(JSONISH, st.booleans())
def test_blocks_and_metadata_parsers_never_crash(value: Any, as_string: bool) -> None:
    raw = json.dumps(value) if as_string else value
    assert error_code(lambda: parse_blocks(raw)) in {None, "invalid_blocks", "invalid_blocks_format"}
    assert error_code(lambda: parse_metadata(raw)) in {None, "invalid_metadata_format"}


@settings(max_examples=40)
@given(st.text(max_size=30))
def test_garbage_strings_are_format_errors(text: str) -> None:
    assert error_code(lambda: parse_blocks(text)) in {None, "invalid_blocks", "invalid_blocks_format"}


@settings(max_examples=40)
@given(JSONISH)
def test_argument_coercions_never_crash(value: Any) -> None:
    args = {"x": value}
    for coerce in (lambda: arg_bool(args, "x"), lambda: arg_int(args, "x", 0), lambda: arg_list(args, "x")):
        assert error_code(coerce) in {None, "invalid_arguments"}


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("0", False), ("false", False)])
def test_form_booleans(raw: str, expected: bool) -> None:
    assert arg_bool({"b": raw}, "b") is expected


@settings(max_examples=40)
@given(st.lists(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=1, max_size=11), max_size=5))
def test_lists_comma_joined_or_json(items: list[str]) -> None:
    assert arg_list({"u": ",".join(items)}, "u") == items
    assert arg_list({"u": items}, "u") == items


@settings(max_examples=40)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_retry_after_is_a_positive_integer(wait: float) -> None:
    value = retry_after_seconds(wait)
    assert isinstance(value, int)
    assert value >= 1


@settings(max_examples=40)
@given(st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=40))
def test_bucket_never_allows_more_than_capacity_plus_refill(gaps: list[float]) -> None:
    bucket = TokenBucket.full(3, 2.0, 0.0)
    now = 0.0
    taken = 0
    for gap in gaps:
        now += gap
        if bucket.wait_time(now) == 0:
            bucket.take()
            taken += 1
    assert taken <= 3 + 2.0 * now + 1e-9


@settings(max_examples=40)
@given(st.integers(min_value=1, max_value=30))
def test_limiter_refusals_consume_nothing(extra: int) -> None:
    limiter = RateLimiter(RATE_PROFILES["tight"])
    allowed = [limiter.check(token="t", method="m", tier=2, channel=None, now=0.0) is None for _ in range(2 + extra)]
    assert allowed == [True, True] + [False] * extra
    assert limiter.check(token="t", method="m", tier=2, channel=None, now=0.1) is None


def test_clock_going_backwards_does_not_drain() -> None:
    bucket = TokenBucket.full(1, 1.0, 100.0)
    bucket.take()
    assert bucket.wait_time(50.0) > 0
    assert bucket.wait_time(101.0) == 0


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@settings(max_examples=25)
@given(
    st.binary(max_size=200),
    st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", "", "multipart/form-data"]),
)
def test_server_answers_json_to_any_body(shared_emulator: SlackEmulator, body: bytes, content_type: str) -> None:
    headers = {"Authorization": f"Bearer {shared_emulator.bot_token}"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(shared_emulator.base_url + "chat.postMessage", data=body, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request) as response:
            status, payload = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read())
    assert status == 200
    assert isinstance(payload["ok"], bool)
