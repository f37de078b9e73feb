"""Our Slack rate limiter, on a simulated clock: bursts, sustained rates, Retry-After."""

from __future__ import annotations

import anyio
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.slack import SlackLimiter
from norbit_connectors.slack._limits import POST_BURST, TIER_MARGIN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def starts(
    limiter: SlackLimiter, clock: Clock, method: str, arrivals: list[float], channel: str | None = None
) -> list[float]:
    """When each call may start, for calls asked for at ``arrivals`` (seconds from the start)."""
    base = clock.now
    out = []
    for at in arrivals:
        clock.now = base + at
        out.append(clock.now + limiter.delay(method, channel) - base)
    return out


def test_tier_two_allows_a_burst_of_twenty_then_one_every_three_seconds() -> None:
    clock = Clock()
    limiter = SlackLimiter(clock=clock)
    times = starts(limiter, clock, "conversations.create", [0.0] * 22)
    assert times[:20] == [0.0] * 20
    # The sustained rate starts a little late, so call 21 lands after Slack's minute has moved on.
    assert times[20] == 3.0 + TIER_MARGIN
    assert times[21] == 6.0 + TIER_MARGIN


def test_posts_are_paced_per_channel() -> None:
    clock = Clock()
    limiter = SlackLimiter(clock=clock)
    one = starts(limiter, clock, "chat.postMessage", [0.0] * 6, channel="C1")
    other = starts(limiter, clock, "chat.postMessage", [0.0], channel="C2")
    assert one == [0.0] * POST_BURST + [1.0, 2.0]
    assert other == [0.0]  # another channel has its own allowance


def test_retry_after_holds_the_limit_back() -> None:
    clock = Clock()
    limiter = SlackLimiter(clock=clock)
    anyio.run(limiter.rate_limited, "chat.postMessage", "C1", 5.0)
    assert limiter.delay("chat.postMessage", "C1") >= 5.0


def test_disabled_limiter_never_waits() -> None:
    clock = Clock()
    limiter = SlackLimiter(clock=clock, enabled=False)
    assert starts(limiter, clock, "conversations.create", [0.0] * 50) == [0.0] * 50


@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), min_size=30, max_size=150),
    method=st.sampled_from(["conversations.create", "conversations.invite", "users.info", "chat.update"]),
)
def test_calls_conform_to_the_tier_bucket(gaps: list[float], method: str) -> None:
    # Slack's tier N allows a burst of N calls and N more per minute: a token bucket of N refilled at N/60 per
    # second. Between any two started calls, no more may start than the bucket holds plus what it refilled.
    clock = Clock()
    limiter = SlackLimiter(clock=clock)
    arrivals: list[float] = []
    at = 0.0
    for gap in gaps:
        at += gap
        arrivals.append(at)
    times = sorted(starts(limiter, clock, method, arrivals))
    per_minute = {"conversations.create": 20, "conversations.invite": 50, "users.info": 100, "chat.update": 50}[method]
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= per_minute + (times[j] - first) * per_minute / 60.0 + 1e-6


@given(arrivals=st.lists(st.floats(min_value=0.0, max_value=30.0, allow_nan=False), min_size=1, max_size=60))
def test_posts_never_start_before_they_are_asked_for(arrivals: list[float]) -> None:
    clock = Clock()
    limiter = SlackLimiter(clock=clock)
    ordered = sorted(arrivals)
    times = starts(limiter, clock, "chat.postMessage", ordered, channel="C1")
    assert all(t >= a - 1e-9 for t, a in zip(times, ordered, strict=True))
    assert times == sorted(times)  # first asked, first served
