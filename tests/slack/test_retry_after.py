"""A 429's Retry-After, read once for the transport and the limiter: finite, not negative, at most an hour.

A header that says ``inf`` or ``1e12`` must not put a channel's queue off for ever, and one that cannot be read
waits the documented default, not nothing.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import RateLimited
from norbit_connectors.slack import SlackLimiter
from norbit_connectors.slack._retry_after import DEFAULT_RETRY_AFTER, MAX_HOLD, clamp_retry_after, parse_retry_after
from norbit_connectors.slack._transport import SlackTransport, map_slack_error

from .conftest import Workspace


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        (["7"], 7.0),
        (b"4", 4.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("nan", DEFAULT_RETRY_AFTER),
        ("NaN", DEFAULT_RETRY_AFTER),
        ("inf", MAX_HOLD),
        ("-inf", 0.0),
        ("1e12", MAX_HOLD),
        ("abc", DEFAULT_RETRY_AFTER),
        ("", DEFAULT_RETRY_AFTER),
        ([], DEFAULT_RETRY_AFTER),
        (None, DEFAULT_RETRY_AFTER),
        ("Wed, 21 Oct 2015 07:28:00 GMT", DEFAULT_RETRY_AFTER),
        ("9" * 400, MAX_HOLD),
        (b"\xff", DEFAULT_RETRY_AFTER),
    ],
)
def test_retry_after_forms(raw: object, seconds: float) -> None:
    assert parse_retry_after(raw) == seconds


@given(raw=st.one_of(st.text(), st.binary(), st.floats(), st.integers(), st.none(), st.lists(st.text(), max_size=2)))
def test_any_retry_after_is_a_finite_wait_of_at_most_an_hour(raw: object) -> None:
    seconds = parse_retry_after(raw)
    assert math.isfinite(seconds)
    assert 0.0 <= seconds <= MAX_HOLD


@given(seconds=st.floats(allow_nan=True, allow_infinity=True))
def test_clamping_keeps_a_sane_wait_and_changes_nothing_else(seconds: float) -> None:
    clamped = clamp_retry_after(seconds)
    assert math.isfinite(clamped) and 0.0 <= clamped <= MAX_HOLD
    if math.isfinite(seconds) and 0.0 <= seconds <= MAX_HOLD:
        assert clamped == seconds


@pytest.mark.parametrize("header", ["inf", "1e12", "nan", "abc"])
def test_map_slack_error_clamps_the_header(header: str) -> None:
    error = map_slack_error("chat.postMessage", 429, {"Retry-After": header}, {"ok": False, "error": "ratelimited"})
    assert isinstance(error, RateLimited)
    assert error.retry_after == parse_retry_after(header)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("header", "retry_after", "slept"),
    [
        ("inf", MAX_HOLD, []),
        ("1e12", MAX_HOLD, []),
        ("nan", DEFAULT_RETRY_AFTER, [DEFAULT_RETRY_AFTER] * 2),
        ("abc", DEFAULT_RETRY_AFTER, [DEFAULT_RETRY_AFTER] * 2),
    ],
)
async def test_a_wild_retry_after_from_slack_is_raised_as_a_wait_that_ends(
    workspace: Workspace, header: str, retry_after: float, slept: list[float]
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    transport = SlackTransport(workspace.config(), limiter=SlackLimiter(enabled=False, sleep=sleep))
    workspace.emu.fail_next("chat.postMessage", 429, times=3, retry_after=header)
    with pytest.raises(RateLimited) as raised:
        await transport.call("chat.postMessage", channel=workspace.main, text="hello")
    # Put off by an hour at most (the hub's retry_job then has a time that comes), or retried after the default.
    assert raised.value.retry_after == retry_after
    assert [w for w in waits if w > 0] == slept
    assert [c.status for c in workspace.emu.calls_to("chat.postMessage")] == [429] * (1 + len(slept))
