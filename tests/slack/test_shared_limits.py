"""The limiter's cells shared through a store: processes pacing one workspace together.

The arithmetic is checked against the emulator's own enforcement (its token buckets with Slack's limits): calls
paced by one shared cell, from several processes with skewed clocks and uneven latency, are never refused.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from norbit_connectors.exceptions import RateLimited, TransportError
from norbit_connectors.slack import SlackLimiter
from norbit_connectors.slack._limits import (
    POST_BURST,
    POST_RATE_PER_SECOND,
    TIER_LIMITS,
    Limit,
    limit_for,
    longest_wait,
    wait_for,
)
from norbit_connectors.slack._retry_after import DEFAULT_RETRY_AFTER, MAX_HOLD
from norbit_connectors.slack._transport import SlackTransport
from norbit_connectors.store import MemoryStore, SQLiteStore, Store
from norbit_connectors.store._rates import advance
from norbit_connectors.testing._slack._ratelimit import RATE_PROFILES, RateLimiter

from .conftest import Workspace

POST = limit_for("chat.postMessage", "C1", tiers=TIER_LIMITS, post_rate=POST_RATE_PER_SECOND, post_burst=POST_BURST)
CREATE = limit_for(
    "conversations.create", None, tiers=TIER_LIMITS, post_rate=POST_RATE_PER_SECOND, post_burst=POST_BURST
)
START = 1.7e9  # Unix seconds, as the processes' shared clock gives them


def _arrivals(limit: Limit, calls: list[tuple[float, int, float]], skews: list[float]) -> list[float]:
    """When calls reach Slack: each ``(gap, process, latency)`` is asked for ``gap`` seconds after the one
    before, by ``process`` (whose clock is off by ``skews[process]``), reserves from the one shared cell, waits
    what the reservation says and is then ``latency`` seconds on its way."""
    cell: float | None = None
    at = START
    arrived: list[float] = []
    for gap, process, latency in calls:
        at += gap
        now = at + skews[process % len(skews)]
        start, cell = advance(cell, now=now, cost=limit.interval)
        arrived.append(at + wait_for(limit, start, now) + latency)
    return sorted(arrived)


def _refused(method: str, tier: int, channel: str | None, arrivals: list[float]) -> int:
    emulator = RateLimiter(RATE_PROFILES["slack"])
    return sum(
        emulator.check(token="xoxb", method=method, tier=tier, channel=channel, now=t) is not None for t in arrivals
    )


@settings(max_examples=300)
@given(
    calls=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=3.0)),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=0.0, max_value=0.4),
        ),
        min_size=1,
        max_size=80,
    ),
    skews=st.lists(st.floats(min_value=-0.2, max_value=0.2), min_size=1, max_size=4),
)
# The edge: a burst from a slow clock arriving late, the next posts from a fast clock arriving at once.
@example(calls=[(0.0, 0, 0.4)] * 4 + [(0.0, 1, 0.0)] * 3, skews=[-0.2, 0.2])
def test_posts_from_processes_sharing_a_cell_are_never_refused(
    calls: list[tuple[float, int, float]], skews: list[float]
) -> None:
    # Our burst is one short of Slack's: a second of room for clocks apart and answers late, together.
    assert POST is not None
    assert _refused("chat.postMessage", 0, "C1", _arrivals(POST, calls, skews)) == 0


@settings(max_examples=200)
@given(
    calls=st.lists(
        st.tuples(
            st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=8.0)),
            st.integers(min_value=0, max_value=3),
            st.floats(min_value=0.0, max_value=0.1),
        ),
        min_size=1,
        max_size=60,
    ),
    skews=st.lists(st.floats(min_value=-0.05, max_value=0.05), min_size=1, max_size=4),
)
@example(calls=[(0.0, 0, 0.1)] * 20 + [(0.0, 1, 0.0)] * 2, skews=[-0.05, 0.05])
def test_tier_calls_from_processes_sharing_a_cell_are_never_refused(
    calls: list[tuple[float, int, float]], skews: list[float]
) -> None:
    # A tier's burst is all of Slack's minute: the margin added to every wait is the room here.
    assert CREATE is not None
    assert _refused("conversations.create", 2, None, _arrivals(CREATE, calls, skews)) == 0


def test_two_processes_with_a_cell_each_are_refused_where_one_shared_cell_is_not() -> None:
    # Ten posts at once, every other one from the second process: apart, each process spends its own burst.
    assert POST is not None
    apart = _arrivals(POST, [(0.0, 0, 0.0)] * 5, [0.0]) + _arrivals(POST, [(0.0, 0, 0.0)] * 5, [0.0])
    assert _refused("chat.postMessage", 0, "C1", sorted(apart)) > 0
    together = _arrivals(POST, [(0.0, i % 2, 0.0) for i in range(10)], [0.0, 0.0])
    assert _refused("chat.postMessage", 0, "C1", together) == 0


def test_clocks_further_apart_than_the_room_can_still_meet_a_429() -> None:
    # What the shared cells cannot help (docs/deploying.md, "Known limits"): clocks 1.2 s apart let the fast
    # one's posts start early by that much, beyond the one spare call of Slack's burst. Slack answers 429 and
    # its Retry-After holds every process back.
    assert POST is not None
    calls = [(0.0, 0, 0.4)] * 4 + [(0.0, 1, 0.0)] * 2
    assert _refused("chat.postMessage", 0, "C1", _arrivals(POST, calls, [-0.6, 0.6])) > 0


@given(start=st.floats(min_value=0, max_value=1e4), now=st.floats(min_value=0, max_value=1e4))
def test_a_wait_is_never_negative_and_reaches_the_allowed_moment(start: float, now: float) -> None:
    assert CREATE is not None
    wait = wait_for(CREATE, start, now)
    assert 0.0 <= wait <= longest_wait(CREATE)
    assert now + wait >= min(start - CREATE.tolerance, now + longest_wait(CREATE)) - 1e-6
    assert wait == 0.0 or wait >= CREATE.margin


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _limiters(store: Store, workspace: str, *more: tuple[Store, str]) -> tuple[list[SlackLimiter], list[float]]:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiters = []
    for where, team in ((store, workspace), *more):
        limiter = SlackLimiter(clock=clock, wall_clock=clock, sleep=sleep)
        limiter.share(where, team)
        assert limiter.shared
        limiters.append(limiter)
    return limiters, slept


async def _post(limiter: SlackLimiter, channel: str = "C1") -> None:
    await limiter.acquire("chat.postMessage", channel)


@pytest.mark.anyio
async def test_two_limiters_on_one_store_share_the_burst_and_the_rate() -> None:
    store = MemoryStore()
    (a, b), slept = _limiters(store, "T1", (store, "T1"))
    for i in range(8):
        await _post(a if i % 2 else b)
    assert slept == [1.0, 2.0, 3.0, 4.0]  # one burst of four between them, then one a second


@pytest.mark.anyio
async def test_without_the_store_each_limiter_allows_the_full_rate() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    a, b = SlackLimiter(clock=clock, sleep=sleep), SlackLimiter(clock=clock, sleep=sleep)
    a.share(object(), "T1")  # a store without rate cells: each paces alone
    assert not a.shared
    for i in range(8):
        await _post(a if i % 2 else b)
    assert slept == []


@pytest.mark.anyio
async def test_workspaces_and_channels_have_cells_of_their_own() -> None:
    store = MemoryStore()
    (a, b), slept = _limiters(store, "T1", (store, "T2"))
    for _ in range(POST_BURST):
        await _post(a)
        await _post(b)
        await _post(a, "C2")
    assert slept == []
    await _post(b)
    assert slept == [1.0]


@pytest.mark.anyio
async def test_sqlite_stores_on_one_file_share_the_cells(tmp_path: Path) -> None:
    assert CREATE is not None
    async with SQLiteStore(tmp_path / "s.sqlite3") as one, SQLiteStore(tmp_path / "s.sqlite3") as two:
        (a, b), slept = _limiters(one, "T1", (two, "T1"))
        for _ in range(20):
            await a.acquire("conversations.create")
            await b.acquire("conversations.create")
        assert len(slept) == 20  # Tier 2: twenty at once, between both
        assert slept[0] == pytest.approx(3.0 + CREATE.margin)  # the 21st: one Tier 2 interval after the burst


@pytest.mark.anyio
async def test_a_429_holds_back_every_limiter_on_the_store() -> None:
    store = MemoryStore()
    (a, b), slept = _limiters(store, "T1", (store, "T1"))
    await _post(a)
    await a.rate_limited("chat.postMessage", "C1", 5.0)
    await a.sleep(5.0)
    assert slept == [5.0]
    await _post(b)
    assert slept[1] >= 5.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("retry_after", "held"), [(float("inf"), MAX_HOLD), (1e12, MAX_HOLD), (float("nan"), DEFAULT_RETRY_AFTER)]
)
async def test_a_retry_after_beyond_reason_holds_back_an_hour(retry_after: float, held: float) -> None:
    store = MemoryStore()
    (a, b), slept = _limiters(store, "T1", (store, "T1"))
    await a.rate_limited("chat.postMessage", "C1", retry_after)
    await a.sleep(1.0)
    await _post(b)
    assert slept == [1.0, pytest.approx(held)]


@pytest.mark.anyio
async def test_a_disabled_limiter_paces_nothing_even_when_shared() -> None:
    store = MemoryStore()
    (a,), slept = _limiters(store, "T1")
    a.enabled = False
    for _ in range(30):
        await a.acquire("conversations.create")
    assert slept == []


@pytest.mark.anyio
async def test_unshared_again_the_limiter_paces_in_process() -> None:
    store = MemoryStore()
    (a, b), slept = _limiters(store, "T1", (store, "T1"))
    for _ in range(POST_BURST):
        await _post(b)
    a.share(None)
    assert not a.shared
    for _ in range(POST_BURST):
        await _post(a)
    assert slept == []


def _recorder() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return slept, sleep


@pytest.mark.anyio
async def test_a_long_retry_after_reaches_the_other_processes_before_the_job_is_put_off(
    workspace: Workspace, tmp_path: Path
) -> None:
    # Slack asks for a minute: too long to wait inline, so the call is raised for the hub to put off. The hold must
    # already be in the shared cell by then, or the other processes go on calling until each gets its own 429.
    path = tmp_path / "s.sqlite3"
    async with SQLiteStore(path) as one, SQLiteStore(path) as two:
        slept, sleep = _recorder()
        transport = SlackTransport(workspace.config(), limiter=SlackLimiter(sleep=sleep))
        transport.limiter.share(one, "T1")
        other = SlackLimiter(sleep=sleep)
        other.share(two, "T1")
        workspace.emu.fail_next("chat.postMessage", 429, retry_after=60)
        with pytest.raises(RateLimited) as raised:
            await transport.call("chat.postMessage", channel=workspace.main, text="hello")
        assert raised.value.retry_after == 60.0
        assert slept == []  # nothing waited inline
        await other.acquire("chat.postMessage", workspace.main)
        assert slept and slept[0] == pytest.approx(60.0, abs=1.0)


def _hide_rate_cells(path: Path, hidden: bool) -> None:
    # Another connection renames the table away (and back): the store's next statement on it fails as a real
    # database fault does, with sqlite3.OperationalError.
    conn = sqlite3.connect(path)
    try:
        old, new = ("rate_cells", "rate_cells_away") if hidden else ("rate_cells_away", "rate_cells")
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.anyio
async def test_a_store_failure_keeps_the_hold_and_is_a_transport_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.sqlite3"
    async with SQLiteStore(path) as one, SQLiteStore(path) as two:
        (a, b), slept = _limiters(one, "T1", (two, "T1"))
        _hide_rate_cells(path, True)
        with caplog.at_level(logging.WARNING, logger="norbit_connectors.slack"):
            await a.rate_limited("chat.postMessage", "C1", 30.0)  # the store fails: kept here, not raised
        assert "hold kept in this process" in caplog.text
        with pytest.raises(TransportError) as raised:
            await _post(a)
        assert raised.value.code == "rate_cells"
        assert "OperationalError" in str(raised.value)
        _hide_rate_cells(path, False)
        await _post(a)  # the hold goes with this reservation, now that the store takes it
        await _post(b)
        assert slept == [pytest.approx(30.0), pytest.approx(31.0)]


@pytest.mark.anyio
async def test_a_failing_store_comes_out_of_the_transport_as_a_norbit_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "s.sqlite3"
    async with SQLiteStore(path) as store:
        transport = SlackTransport(workspace.config())
        transport.limiter.share(store, "T1")
        _hide_rate_cells(path, True)
        with pytest.raises(TransportError):
            await transport.call("chat.postMessage", channel=workspace.main, text="hello")
        assert workspace.emu.calls_to("chat.postMessage") == []  # not sent unpaced either


@pytest.mark.anyio
async def test_shared_cells_hold_unix_times_whatever_the_injected_clock() -> None:
    store = MemoryStore()
    _, sleep = _recorder()
    limiter = SlackLimiter(clock=lambda: 100.0, sleep=sleep)  # seconds since boot, say
    limiter.share(store, "T1")
    await _post(limiter)
    cell = await store.reserve_rate("slack:T1:post:C1", now=0.0, cost=0.0)
    assert abs(cell - time.time()) < 60


@pytest.mark.anyio
async def test_a_cell_far_ahead_waits_no_longer_than_the_longest_hold() -> None:
    # A host whose clock ran a day ahead (or stepped back since) wrote the cell: one call waits at most a hold.
    assert POST is not None
    store = MemoryStore()
    await store.reserve_rate("slack:T1:post:C1", now=START + 86_400, cost=0.0)
    (a,), slept = _limiters(store, "T1")
    await _post(a)
    assert slept == [pytest.approx(longest_wait(POST))]
    assert longest_wait(POST) == POST.tolerance + POST.interval + MAX_HOLD


@pytest.mark.anyio
async def test_workspaces_without_an_id_do_not_share_one_scope() -> None:
    # auth.test without a team id (nor an enterprise id): a scope of "" would pace unrelated workspaces together.
    store = MemoryStore()
    a, b = SlackLimiter(), SlackLimiter()
    a.share(store, "")
    b.share(store, "")
    assert not a.shared and not b.shared
    a.share(store, "E1")
    assert a.shared
