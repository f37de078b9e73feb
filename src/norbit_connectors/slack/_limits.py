"""Our own Slack rate limiter: per method tier per workspace, and chat.postMessage per channel.

Each limit is a generic cell rate algorithm (a token bucket told as times): a call reserves the earliest moment
it may go, so concurrent callers queue fairly without polling, and a 429's Retry-After pushes the cell back.

Inside a running hub the cells live in the hub's store (:class:`~norbit_connectors.store.RateCells`), keyed by
the workspace: every process sharing the store reserves from the same cells, one store round trip per paced
call, so together they stay within one workspace's limits. Outside a hub, or with a store without rate cells,
they live in this process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio
from attrs import frozen

from ..exceptions import NorbitError, TransportError
from ..store import RateCells
from ..store._rates import advance
from ._retry_after import MAX_HOLD, clamp_retry_after

__all__ = ["MAX_HOLD", "METHOD_TIERS", "TIER_LIMITS", "Limit", "SlackLimiter", "limit_for", "longest_wait", "wait_for"]

log = logging.getLogger("norbit_connectors.slack")

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


def longest_wait(limit: Limit) -> float:
    """The most one call waits on ``limit``: the longest hold after a 429, the burst and one interval (a cell
    further ahead than that was written by a clock running ahead, or one stepped back since)."""
    return limit.tolerance + limit.interval + MAX_HOLD


def wait_for(limit: Limit, start: float, now: float) -> float:
    """Seconds to wait at ``now`` before a call whose reservation on ``limit``'s cell started at ``start``
    (never more than :func:`longest_wait`)."""
    wait = start - limit.tolerance - now
    return min(wait + limit.margin, longest_wait(limit)) if wait > 0 else 0.0


class SlackLimiter:
    """Waits as needed before each Slack call. Cancellable; shared by every task of one connector."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        tiers: dict[int, int] | None = None,
        post_rate: float = POST_RATE_PER_SECOND,
        post_burst: int = POST_BURST,
        enabled: bool = True,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """``clock`` (cells in this process, :func:`time.monotonic` by default) and ``sleep`` are injectable
        together (a simulated clock must come with a sleep that waits in the same time). Cells in a store use
        ``wall_clock`` (:func:`time.time`), never ``clock``: other processes and hosts read them, so their times
        must be Unix times; a simulated one is given as both. ``enabled=False`` paces nothing (for a server
        without limits)."""
        self._clock = clock or time.monotonic
        self._shared_clock = wall_clock
        self._sleep = sleep
        self._tiers = dict(TIER_LIMITS if tiers is None else tiers)
        self._post = (post_rate, post_burst)
        self._limits: dict[tuple[str, str | None], Limit | None] = {}
        self._cells: dict[str, float] = {}
        self._store: RateCells | None = None
        self._scope = ""
        # Retry-After holds (cell key -> not before) not yet written to the store's cell (its write failed).
        self._holds: dict[str, float] = {}
        self.enabled = enabled

    def share(self, store: object | None, workspace: str = "") -> None:
        """Pace with the rate cells of ``store`` (when it has them), under ``workspace`` (the team id, or the
        enterprise id of an install without one): every process doing the same on that store paces that
        workspace's calls together. ``None``, or no ``workspace`` (one scope for every workspace without an id
        would pace unrelated workspaces together): in this process."""
        self._store = store if isinstance(store, RateCells) and workspace else None
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

    async def _reserve(self, store: RateCells, key: str, *, now: float, cost: float) -> float:
        """Reserve on the store's cell ``key``, taking any hold still to be written along; the hold is
        forgotten only once the store has it. A store failure is a TransportError (the call is retried later,
        the hold kept for it)."""
        hold = self._holds.get(key, 0.0)
        try:
            start = await store.reserve_rate(self._scope + key, now=now, cost=cost, not_before=hold)
        except NorbitError:
            raise
        except Exception as exc:
            raise TransportError(
                f"Slack rate cells in the store failed: {type(exc).__name__}", code="rate_cells", service="slack"
            ) from None
        if self._holds.get(key) == hold:
            del self._holds[key]
        return start

    async def acquire(self, method: str, channel: str | None = None) -> None:
        """Wait until a call of ``method`` (to ``channel``) may go. With the cells in a store, a store that fails
        raises :class:`~norbit_connectors.exceptions.TransportError`."""
        store = self._store
        if store is None or not self.enabled:
            wait = self.delay(method, channel)
        else:
            limit = self._limit(method, channel)
            if limit is None:
                return
            now = self._shared_clock()
            start = await self._reserve(store, limit.key, now=now, cost=limit.interval)
            wait = wait_for(limit, start, now)
        if wait > 0:
            await self._sleep(wait)

    async def rate_limited(self, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429: hold this limit back for ``retry_after`` seconds (clamped to ``[0, MAX_HOLD]``).
        With the cells in a store the hold is written there before this returns, so that every process holds
        back; if the store fails, the hold is kept here (a WARNING is logged) and goes with the next
        reservation."""
        limit = self._limit(method, channel)
        if limit is None:
            return
        retry_after = clamp_retry_after(retry_after)
        # After a 429, nothing goes before now + retry_after, and then at the sustained rate.
        store = self._store
        if store is None:
            until = self._clock() + retry_after + limit.tolerance
            self._cells[limit.key] = advance(self._cells.get(limit.key), now=until, cost=0.0)[1]
            return
        now = self._shared_clock()
        self._holds[limit.key] = max(now + retry_after + limit.tolerance, self._holds.get(limit.key, 0.0))
        await self._write_holds(store, now)

    async def _write_holds(self, store: RateCells, now: float) -> None:
        for key in list(self._holds):
            try:
                await self._reserve(store, key, now=now, cost=0.0)
            except TransportError as exc:
                log.warning("Slack rate limit hold kept in this process for now: %s", exc)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` in the limiter's time (after a 429), first trying once more to write any hold the
        store did not take."""
        store = self._store
        if store is not None and self._holds:
            await self._write_holds(store, self._shared_clock())
        await self._sleep(seconds)
