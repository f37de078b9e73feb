"""Token buckets for the emulator's rate limits (pure: the caller passes the time)."""

from __future__ import annotations

import math
from typing import Literal

import attrs

__all__ = ["RATE_PROFILES", "RateLimiter", "RateProfile", "TokenBucket", "retry_after_seconds"]

RateLimitMode = Literal["off", "slack", "tight"]


@attrs.frozen(kw_only=True)
class RateProfile:
    """Bucket sizes: per tier ``(capacity, refill per second)``, and the per-channel ``chat.postMessage`` bucket."""

    tiers: dict[int, tuple[float, float]]
    post_per_channel: tuple[float, float]


RATE_PROFILES: dict[str, RateProfile | None] = {
    "off": None,
    # Slack's published limits: Tier 1 1/min, Tier 2 20/min, Tier 3 50/min, Tier 4 100/min (bursts up to the
    # minute's allowance), chat.postMessage about one message per second per channel with a short burst.
    "slack": RateProfile(
        tiers={1: (1, 1 / 60), 2: (20, 20 / 60), 3: (50, 50 / 60), 4: (100, 100 / 60)},
        post_per_channel=(5, 1.0),
    ),
    # Small limits that tests can hit quickly and recover from within a fraction of a second.
    "tight": RateProfile(
        tiers={1: (1, 2.0), 2: (2, 10.0), 3: (5, 25.0), 4: (10, 50.0)},
        post_per_channel=(2, 10.0),
    ),
}


@attrs.define(kw_only=True)
class TokenBucket:
    capacity: float
    refill_per_second: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, capacity: float, refill_per_second: float, now: float) -> TokenBucket:
        return cls(capacity=capacity, refill_per_second=refill_per_second, tokens=capacity, updated=now)

    def _refill(self, now: float) -> None:
        # A clock that goes backwards (an injected one) must not drain the bucket.
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_second)
        self.updated = max(self.updated, now)

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0 if one is available now)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.refill_per_second

    def take(self) -> None:
        self.tokens -= 1.0


def retry_after_seconds(wait: float) -> int:
    """The ``Retry-After`` header value for a wait: whole seconds, at least 1."""
    if not math.isfinite(wait) or wait <= 0:
        return 1
    return max(1, math.ceil(wait))


class RateLimiter:
    """Buckets per ``(token, method)`` by the method's tier, and per channel for ``chat.postMessage``.

    A call that is refused does not consume anything.
    """

    def __init__(self, profile: RateProfile | None) -> None:
        self._profile = profile
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}

    def check(self, *, token: str, method: str, tier: int, channel: str | None, now: float) -> int | None:
        """``None`` if the call may proceed (and is counted), else the Retry-After seconds."""
        if self._profile is None:
            return None
        buckets: list[TokenBucket] = []
        if tier in self._profile.tiers:
            capacity, rate = self._profile.tiers[tier]
            buckets.append(self._bucket(("method", token, method), capacity, rate, now))
        if channel is not None:
            capacity, rate = self._profile.post_per_channel
            buckets.append(self._bucket(("channel", channel), capacity, rate, now))
        wait = max((bucket.wait_time(now) for bucket in buckets), default=0.0)
        if wait > 0:
            return retry_after_seconds(wait)
        for bucket in buckets:
            bucket.take()
        return None

    def _bucket(self, key: tuple[str, ...], capacity: float, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(capacity, rate, now)
            self._buckets[key] = bucket
        return bucket
