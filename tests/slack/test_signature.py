from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import InvalidRequest
from norbit_connectors.slack._signature import (
    MAX_SKEW_SECONDS,
    compute_signature,
    header,
    sign_headers,
    verify_signature,
)

# Slack's published example (also used by slack_sdk's own signature tests).
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = 1531420618
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_official_vector() -> None:
    assert compute_signature(SECRET, TIMESTAMP, BODY) == EXPECTED
    headers = {"X-Slack-Request-Timestamp": str(TIMESTAMP), "X-Slack-Signature": EXPECTED}
    verify_signature(SECRET, headers, BODY, now=TIMESTAMP + 10)


def test_header_names_are_case_insensitive() -> None:
    headers = {"x-slack-request-timestamp": str(TIMESTAMP), "X-SLACK-SIGNATURE": EXPECTED}
    verify_signature(SECRET, headers, BODY, now=TIMESTAMP)


_NAMES = st.sampled_from(["X-Slack-Signature", "X-Slack-Request-Timestamp", "Content-Type"])


@given(_NAMES, st.data(), st.dictionaries(st.text(alphabet="abcxyz-"), st.text()))
def test_header_is_found_in_any_case(name: str, data: st.DataObject, others: dict[str, str]) -> None:
    spelled = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in name)
    headers = {**others, spelled: "the value"}
    assert header(headers, name) == "the value"


@given(_NAMES, st.dictionaries(st.text(), st.text()))
def test_header_is_none_only_when_absent(name: str, headers: dict[str, str]) -> None:
    present = [value for key, value in headers.items() if key.lower() == name.lower()]
    found = header(headers, name)
    assert (found is None) == (not present)
    assert found is None or found in present


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing"),
        ({"X-Slack-Signature": EXPECTED}, "missing"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": EXPECTED}, "Unix time"),
        ({"X-Slack-Request-Timestamp": str(TIMESTAMP - 301), "X-Slack-Signature": EXPECTED}, "window"),
        ({"X-Slack-Request-Timestamp": str(TIMESTAMP), "X-Slack-Signature": "v0=00"}, "does not match"),
        ({"X-Slack-Request-Timestamp": str(TIMESTAMP), "X-Slack-Signature": "v0=é"}, "does not match"),
    ],
)
def test_refusals_are_401(headers: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        verify_signature(SECRET, headers, BODY, now=TIMESTAMP)
    assert info.value.status == 401
    assert SECRET not in str(info.value)


def test_window_edges() -> None:
    for skew in (-MAX_SKEW_SECONDS, MAX_SKEW_SECONDS):
        headers = sign_headers(SECRET, BODY, timestamp=TIMESTAMP + skew)
        verify_signature(SECRET, headers, BODY, now=TIMESTAMP)


@given(st.text(min_size=1), st.binary(), st.integers(min_value=0, max_value=10**12 - 1))
def test_signed_bodies_verify(secret: str, body: bytes, timestamp: int) -> None:
    headers = sign_headers(secret, body, timestamp=timestamp)
    verify_signature(secret, headers, body, now=timestamp)


@given(st.text(min_size=1), st.binary(), st.binary(), st.integers(min_value=0, max_value=10**12 - 1))
def test_other_bodies_are_refused(secret: str, body: bytes, other: bytes, timestamp: int) -> None:
    if other == body:
        return
    headers = sign_headers(secret, body, timestamp=timestamp)
    with pytest.raises(InvalidRequest):
        verify_signature(secret, headers, other, now=timestamp)


@given(st.dictionaries(st.text(), st.text()), st.binary(), st.floats(allow_nan=False, allow_infinity=False))
def test_arbitrary_headers_only_raise_invalid_request(headers: dict[str, str], body: bytes, now: float) -> None:
    try:
        verify_signature(SECRET, headers, body, now=now)
    except InvalidRequest as exc:
        status = exc.status
    else:
        status = 200
    assert status in (200, 401)
