"""Our own Slack rate limiter: per method tier per workspace, and chat.postMessage per channel.

Each limit is a generic cell rate algorithm (a token bucket told as times): a call reserves the earliest moment
it may go, so concurrent callers queue fairly without polling, and a 429's Retry-After pushes the cell back.

Inside a running hub the cells live in the hub's store (:class:`~norbit_connectors.store.RateCells`), keyed by
the workspace: every process sharing the store reserves from the same cells, one store round trip per paced
call, so together they stay within one workspace's limits. Outside a hub, or with a store without rate cells,
they live in this process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio
from attrs import frozen

from ..store import RateCells
from ..store._rates import advance

__all__ = ["METHOD_TIERS", "TIER_LIMITS", "Limit", "SlackLimiter", "limit_for", "wait_for"]

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
#: The longest Retry-After a 429 can hold a limit back for (a larger or unreadable one counts as this).
MAX_HOLD = 3600.0


@frozen(kw_only=True)
class Limit:
    """One cell's rule: ``key`` (within a workspace), seconds between calls at the sustained rate
    (``interval``), how far ahead of it a burst may run (``tolerance``), and seconds added to every wait, never
    to a call the burst allows at once (``margin``)."""

    key: str
    interval: float
    tolerance: float
    margin: float = 0.0


def limit_for(
    method: str, channel: str | None, *, tiers: dict[int, int], post_rate: float, post_burst: int
) -> Limit | None:
    """The cell a call of ``method`` (to ``channel``) counts against, or None when we do not pace it."""
    if method == "chat.postMessage":
        if not channel:
            return None
        return Limit(key=f"post:{channel}", interval=1.0 / post_rate, tolerance=max(0, post_burst - 1) / post_rate)
    tier = METHOD_TIERS.get(method)
    if tier is None:
        return None
    per_minute = tiers[tier]
    interval = 60.0 / per_minute
    # Slack counts the minute from when the first call arrives, we from when it is reserved: a call that has to
    # wait waits a little longer, so that the call after a full burst never lands early.
    return Limit(key=f"tier:{method}", interval=interval, tolerance=interval * (per_minute - 1), margin=TIER_MARGIN)


def wait_for(limit: Limit, start: float, now: float) -> float:
    """Seconds to wait at ``now`` before a call whose reservation on ``limit``'s cell started at ``start``."""
    wait = start - limit.tolerance - now
    return wait + limit.margin if wait > 0 else 0.0


class SlackLimiter:
    """Waits as needed before each Slack call. Cancellable; shared by every task of one connector."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        tiers: dict[int, int] | None = None,
        post_rate: float = POST_RATE_PER_SECOND,
        post_burst: int = POST_BURST,
        enabled: bool = True,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` are injectable together (a simulated clock must come with a sleep that
        waits in the same time); by default cells in this process use :func:`time.monotonic` and cells in a
        store :func:`time.time`, the clock processes share. ``enabled=False`` paces nothing (for a server
        without limits)."""
        self._clock = clock or time.monotonic
        self._shared_clock = clock or time.time
        self._sleep = sleep
        self._tiers = dict(TIER_LIMITS if tiers is None else tiers)
        self._post = (post_rate, post_burst)
        self._limits: dict[tuple[str, str | None], Limit | None] = {}
        self._cells: dict[str, float] = {}
        self._store: RateCells | None = None
        self._scope = ""
        # Retry-After holds (cell key -> not before) still to be written to the store's cell.
        self._holds: dict[str, float] = {}
        self.enabled = enabled

    def share(self, store: object | None, workspace: str = "") -> None:
        """Pace with the rate cells of ``store`` (when it has them), under ``workspace`` (the team id): every
        process doing the same on that store paces that workspace's calls together. ``None``: in this process."""
        self._store = store if isinstance(store, RateCells) else None
        self._scope = f"slack:{workspace}:"
        self._holds.clear()

    @property
    def shared(self) -> bool:
        """True when the cells are in a store, shared by every process using it."""
        return self._store is not None

    def _limit(self, method: str, channel: str | None) -> Limit | None:
        found = self._limits.get((method, channel), self)
        if found is self:
            rate, burst = self._post
            found = limit_for(method, channel, tiers=self._tiers, post_rate=rate, post_burst=burst)
            if len(self._limits) > 10_000:  # one per channel ever posted to: keep it bounded
                self._limits.clear()
            self._limits[(method, channel)] = found
        return found if isinstance(found, Limit) else None

    def delay(self, method: str, channel: str | None = None) -> float:
        """Reserve a call now in this process's cells; the seconds to wait before making it."""
        if not self.enabled:
            return 0.0
        limit = self._limit(method, channel)
        if limit is None:
            return 0.0
        now = self._clock()
        start, self._cells[limit.key] = advance(self._cells.get(limit.key), now=now, cost=limit.interval)
        return wait_for(limit, start, now)

    async def acquire(self, method: str, channel: str | None = None) -> None:
        """Wait until a call of ``method`` (to ``channel``) may go."""
        store = self._store
        if store is None or not self.enabled:
            wait = self.delay(method, channel)
        else:
            limit = self._limit(method, channel)
            if limit is None:
                return
            now = self._shared_clock()
            hold = self._holds.pop(limit.key, 0.0)
            start = await store.reserve_rate(self._scope + limit.key, now=now, cost=limit.interval, not_before=hold)
            wait = wait_for(limit, start, now)
        if wait > 0:
            await self._sleep(wait)

    def rate_limited(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429: hold this limit back for ``retry_after`` seconds (in a store's cell: from the
        next :meth:`sleep` or :meth:`acquire` on, whichever comes first)."""
        limit = self._limit(method, channel)
        if limit is None:
            return
        retry_after = min(max(retry_after, 0.0), MAX_HOLD) if math.isfinite(retry_after) else MAX_HOLD
        # After a 429, nothing goes before now + retry_after, and then at the sustained rate.
        if self._store is None:
            until = self._clock() + retry_after + limit.tolerance
            self._cells[limit.key] = advance(self._cells.get(limit.key), now=until, cost=0.0)[1]
        else:
            until = self._shared_clock() + retry_after + limit.tolerance
            self._holds[limit.key] = max(until, self._holds.get(limit.key, 0.0))

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` in the limiter's time (after a 429), first writing its hold to the store's cell so
        that the other processes hold back too."""
        store = self._store
        while store is not None and self._holds:
            key, until = self._holds.popitem()
            await store.reserve_rate(self._scope + key, now=self._shared_clock(), cost=0.0, not_before=until)
        await self._sleep(seconds)
