"""Our own Slack rate limiter: per method tier per workspace, and chat.postMessage per channel.

Each limit is a generic cell rate algorithm (a token bucket told as times): a call reserves the earliest moment
it may go, so concurrent callers queue fairly without polling, and a 429's Retry-After pushes the cell back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from attrs import define

__all__ = ["METHOD_TIERS", "TIER_LIMITS", "SlackLimiter"]

#: Slack's published tiers: calls per minute, all of which may come in a burst.
TIER_LIMITS: dict[int, int] = {1: 1, 2: 20, 3: 50, 4: 100}

METHOD_TIERS: dict[str, int] = {
    "conversations.create": 2,
    "conversations.archive": 2,
    "conversations.unarchive": 2,
    "conversations.rename": 2,
    "conversations.setTopic": 2,
    "conversations.setPurpose": 2,
    "conversations.list": 2,
    "conversations.invite": 3,
    "conversations.join": 3,
    "conversations.kick": 3,
    "conversations.info": 3,
    "conversations.history": 3,
    "chat.update": 3,
    "chat.delete": 3,
    "users.lookupByEmail": 3,
    "users.getPresence": 3,
    "reactions.add": 3,
    "chat.postEphemeral": 4,
    "conversations.members": 4,
    "users.info": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
}

#: chat.postMessage: about one message per second per channel, short bursts tolerated.
POST_RATE_PER_SECOND = 1.0
POST_BURST = 4
#: Seconds of safety between our count of Slack's minute and Slack's own.
TIER_MARGIN = 0.25


@define
class _Cell:
    interval: float  # seconds between calls at the sustained rate
    tolerance: float  # how far ahead of the sustained rate a burst may run
    margin: float = 0.0  # added to every wait, never to a call the burst allows at once
    tat: float = 0.0  # theoretical arrival time of the next call

    def reserve(self, now: float) -> float:
        """Reserve a slot; returns how long to wait before using it."""
        tat = max(self.tat, now)
        allowed_at = tat - self.tolerance
        wait = max(0.0, allowed_at - now)
        self.tat = tat + self.interval
        return wait + self.margin if wait > 0 else 0.0

    def push_back(self, now: float, retry_after: float) -> None:
        # After a 429, nothing goes before now + retry_after, and then at the sustained rate.
        self.tat = max(self.tat, now + retry_after + self.tolerance)


class SlackLimiter:
    """Waits as needed before each Slack call. Cancellable; shared by every task of one connector."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        tiers: dict[int, int] | None = None,
        post_rate: float = POST_RATE_PER_SECOND,
        post_burst: int = POST_BURST,
        enabled: bool = True,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` are injectable together (a simulated clock must come with a sleep that
        waits in the same time); ``enabled=False`` paces nothing (for a server without limits)."""
        self._clock = clock
        self.sleep = sleep
        self._tiers = dict(TIER_LIMITS if tiers is None else tiers)
        self._post = (1.0 / post_rate, max(0, post_burst - 1) / post_rate)
        self._cells: dict[str, _Cell] = {}
        self.enabled = enabled

    def _cell(self, method: str, channel: str | None) -> _Cell | None:
        if method == "chat.postMessage":
            if not channel:
                return None
            key = f"post:{channel}"
            if key not in self._cells:
                self._cells[key] = _Cell(interval=self._post[0], tolerance=self._post[1])
            return self._cells[key]
        tier = METHOD_TIERS.get(method)
        if tier is None:
            return None
        key = f"tier:{method}"
        if key not in self._cells:
            per_minute = self._tiers[tier]
            interval = 60.0 / per_minute
            # Slack counts the minute from when the first call arrives, we from when it is reserved: a call that
            # has to wait waits a little longer, so that the call after a full burst never lands early.
            self._cells[key] = _Cell(interval=interval, tolerance=interval * (per_minute - 1), margin=TIER_MARGIN)
        return self._cells[key]

    def delay(self, method: str, channel: str | None = None) -> float:
        """Reserve a call now; the seconds to wait before making it."""
        if not self.enabled:
            return 0.0
        cell = self._cell(method, channel)
        return 0.0 if cell is None else cell.reserve(self._clock())

    async def acquire(self, method: str, channel: str | None = None) -> None:
        wait = self.delay(method, channel)
        if wait > 0:
            await self.sleep(wait)

    def rate_limited(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429: hold this limit back for ``retry_after`` seconds."""
        cell = self._cell(method, channel)
        if cell is not None:
            cell.push_back(self._clock(), retry_after)
