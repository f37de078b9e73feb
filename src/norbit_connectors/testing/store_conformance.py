"""The Store conformance suite: every rule of :class:`norbit_connectors.store.Store`, as pytest tests.

Reuse it for your own store::

    import pytest
    from norbit_connectors.testing.store_conformance import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with MyStore(...) as store:  # empty, open, for one test
                yield store

The tests are ``@pytest.mark.anyio`` coroutines: the project running them provides the ``anyio_backend`` fixture
(and pytest's anyio plugin, which comes with anyio). Every store value must be JSON: what comes back equals
``json.loads(json.dumps(value))``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import pytest

from .._models import Attachment, Message
from ..exceptions import UsageError
from ..store import Batch, InboxKey, Job, NewJob, Put, RateCells, Store, TranscriptEntry

__all__ = [
    "JSON_SAMPLES",
    "ConcurrencyConformance",
    "DocumentConformance",
    "JobConformance",
    "RateCellConformance",
    "StoreConformance",
]

#: Values every store must return exactly as ``json.loads(json.dumps(value))``.
JSON_SAMPLES: tuple[Any, ...] = (
    None,
    True,
    0,
    -(2**62),
    2**53 + 1,
    0.1,
    1e300,
    -2.5e-300,
    "",
    "plain",
    "unicode: é ß 漢字 😀 \u200b",
    'escapes: "quoted" \\ \n \t \x00 \x1f',
    "lone surrogate \ud800",
    [],
    {},
    [1, "two", 3.0, None, [4, [5, {"six": 6}]]],
    {"b": 1, "a": 2, "ключ": {"nested": [True, False, None]}, "": ""},
    {"tuple": (1, 2), "deep": {"x": {"y": {"z": ["w"]}}}},
)


def _message(n: int) -> Message:
    return Message(id=f"m{n}", text=f"message {n}")


def _entry(conversation_id: str, n: int, **kw: Any) -> TranscriptEntry:
    return TranscriptEntry(conversation_id=conversation_id, role="customer", message=_message(n), **kw)


def _job(queue_key: str, n: int = 0, **kw: Any) -> NewJob:
    return NewJob(queue_key=queue_key, connector="slack", kind="post", payload={"n": n}, **kw)


async def _enqueue(store: Store, *jobs: NewJob, now: float = 0.0) -> tuple[int, ...]:
    result = await store.commit(Batch(jobs=jobs), now=now)
    assert result.ok
    return result.job_ids


def _ids(jobs: list[Job]) -> list[int]:
    return [job.id for job in jobs]


def _cells(store: Store) -> RateCells:
    if not isinstance(store, RateCells):
        pytest.skip("the store has no rate cells (reserve_rate): processes sharing it pace Slack each on its own")
    return store


class RateCellConformance:
    """The rules of :class:`norbit_connectors.store.RateCells` (part of :class:`StoreConformance`; a store
    without ``reserve_rate`` skips them)."""

    @pytest.mark.anyio
    async def test_rate_cell_starts_now_and_spaces_reservations_by_their_cost(self, store: Store) -> None:
        cells = _cells(store)
        assert await cells.reserve_rate("slack:T1:post:C1", now=100.0, cost=1.0) == 100.0
        assert await cells.reserve_rate("slack:T1:post:C1", now=100.0, cost=1.0) == pytest.approx(101.0)
        assert await cells.reserve_rate("slack:T1:post:C1", now=100.5, cost=3.0) == pytest.approx(102.0)
        assert await cells.reserve_rate("slack:T1:post:C1", now=100.5, cost=0.5) == pytest.approx(105.0)

    @pytest.mark.anyio
    async def test_an_idle_rate_cell_starts_again_from_now(self, store: Store) -> None:
        cells = _cells(store)
        await cells.reserve_rate("k", now=10.0, cost=2.0)
        assert await cells.reserve_rate("k", now=50.0, cost=2.0) == 50.0
        assert await cells.reserve_rate("k", now=51.0, cost=2.0) == pytest.approx(52.0)

    @pytest.mark.anyio
    async def test_not_before_holds_a_rate_cell_back(self, store: Store) -> None:
        cells = _cells(store)
        assert await cells.reserve_rate("new", now=10.0, cost=1.0, not_before=30.0) == 30.0
        await cells.reserve_rate("k", now=10.0, cost=1.0)
        # cost 0: only the hold (a 429's Retry-After); what comes next starts after it.
        assert await cells.reserve_rate("k", now=10.0, cost=0.0, not_before=20.0) == 20.0
        assert await cells.reserve_rate("k", now=11.0, cost=1.0) == 20.0
        # A hold earlier than the cell changes nothing.
        assert await cells.reserve_rate("k", now=11.0, cost=0.0, not_before=12.0) == pytest.approx(21.0)

    @pytest.mark.anyio
    async def test_rate_cells_are_independent_per_key(self, store: Store) -> None:
        cells = _cells(store)
        await cells.reserve_rate("slack:T1:post:C1", now=0.0, cost=60.0)
        assert await cells.reserve_rate("slack:T1:post:C2", now=0.0, cost=1.0) == 0.0
        assert await cells.reserve_rate("slack:T2:post:C1", now=0.0, cost=1.0) == 0.0
        assert await cells.reserve_rate("slack:T1:post:C1", now=0.0, cost=1.0) == pytest.approx(60.0)
        key = "unicode é 漢字 😀 " + "x" * 490
        assert await cells.reserve_rate(key, now=5.0, cost=1.0) == 5.0
        assert await cells.reserve_rate(key, now=5.0, cost=1.0) == pytest.approx(6.0)

    @pytest.mark.anyio
    async def test_concurrent_reservations_never_share_a_slot(self, store: Store) -> None:
        cells = _cells(store)
        starts: list[float] = []

        async def reserve() -> None:
            starts.append(await cells.reserve_rate("busy", now=1000.0, cost=0.25))

        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(reserve)
        assert sorted(starts) == pytest.approx([1000.0 + 0.25 * i for i in range(40)])
        assert await cells.reserve_rate("busy", now=1000.0, cost=0.0) == pytest.approx(1010.0)

    @pytest.mark.anyio
    @pytest.mark.parametrize(
        ("key", "now", "cost", "not_before"),
        [
            ("", 0.0, 1.0, 0.0),
            ("x" * 513, 0.0, 1.0, 0.0),
            ("k", float("nan"), 1.0, 0.0),
            ("k", float("inf"), 1.0, 0.0),
            ("k", 0.0, -1.0, 0.0),
            ("k", 0.0, float("nan"), 0.0),
            ("k", 0.0, 1.0, float("inf")),
        ],
    )
    async def test_bad_rate_reservations_are_usage_errors(
        self, store: Store, key: str, now: float, cost: float, not_before: float
    ) -> None:
        cells = _cells(store)
        with pytest.raises(UsageError):
            await cells.reserve_rate(key, now=now, cost=cost, not_before=not_before)
        assert await cells.reserve_rate("k", now=1.0, cost=1.0) == 1.0  # nothing was written

    @pytest.mark.anyio
    async def test_prune_forgets_idle_rate_cells_only(self, store: Store) -> None:
        cells = _cells(store)
        await cells.reserve_rate("idle", now=10.0, cost=1.0)
        await cells.reserve_rate("busy", now=100.0, cost=10.0)
        assert await store.prune(inbox_before=50.0) == 1
        assert await store.prune(inbox_before=50.0) == 0
        assert await cells.reserve_rate("busy", now=60.0, cost=1.0) == pytest.approx(110.0)
        assert await cells.reserve_rate("idle", now=60.0, cost=1.0) == 60.0


class DocumentConformance:
    """The store conformance checks of documents, transcripts and the inbox (part of :class:`StoreConformance`)."""

    # -- documents ----------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_unconditional_puts_bump_version(self, store: Store) -> None:
        for expected in (1, 2, 3):
            result = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=expected)]), now=0)
            assert result.ok
            assert result.versions == (expected,)
        doc = await store.get("ns", "k")
        assert doc is not None
        assert (doc.value, doc.version) == (3, 3)
        assert await store.get("other", "k") is None
        assert await store.get("ns", "K") is None

    @pytest.mark.anyio
    async def test_expected_version_zero_creates_only(self, store: Store) -> None:
        first = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value="a", expected_version=0)]), now=0)
        assert first.ok
        assert first.versions == (1,)
        second = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value="b", expected_version=0)]), now=0)
        assert not second.ok
        assert second.conflict == ("ns", "k")
        assert second.duplicate is None
        doc = await store.get("ns", "k")
        assert doc is not None
        assert (doc.value, doc.version) == ("a", 1)

    @pytest.mark.anyio
    async def test_expected_version_n(self, store: Store) -> None:
        await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=1)]), now=0)
        await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=2)]), now=0)
        stale = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=9, expected_version=1)]), now=0)
        assert not stale.ok
        assert stale.conflict == ("ns", "k")
        ahead = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=9, expected_version=3)]), now=0)
        assert not ahead.ok
        fresh = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=3, expected_version=2)]), now=0)
        assert fresh.ok
        assert fresh.versions == (3,)
        missing = await store.commit(
            Batch(puts=[Put(namespace="ns", key="absent", value=1, expected_version=1)]), now=0
        )
        assert not missing.ok
        assert missing.conflict == ("ns", "absent")
        assert await store.get("ns", "absent") is None

    @pytest.mark.anyio
    async def test_conflict_writes_nothing(self, store: Store) -> None:
        await store.commit(Batch(puts=[Put(namespace="ns", key="taken", value=1)]), now=0)
        batch = Batch(
            puts=[
                Put(namespace="ns", key="free", value="x"),
                Put(namespace="ns", key="taken", value=2, expected_version=0),
            ],
            transcript=[_entry("c1", 1)],
            inbox=[InboxKey(source="slack", event_id="e1")],
            jobs=[_job("q")],
        )
        result = await store.commit(batch, now=0)
        assert not result.ok
        assert result.conflict == ("ns", "taken")
        assert await store.get("ns", "free") is None
        assert await store.transcript("c1") == []
        assert await store.pending_jobs() == 0
        # The inbox key was not recorded either: it is accepted now.
        again = await store.commit(Batch(inbox=[InboxKey(source="slack", event_id="e1")]), now=0)
        assert again.ok

    @pytest.mark.anyio
    async def test_versions_in_put_order(self, store: Store) -> None:
        await store.commit(Batch(puts=[Put(namespace="ns", key="b", value=0)]), now=0)
        result = await store.commit(
            Batch(
                puts=[
                    Put(namespace="ns", key="a", value=1),
                    Put(namespace="ns", key="b", value=1, expected_version=1),
                    Put(namespace="other", key="a", value=1, expected_version=0),
                ]
            ),
            now=0,
        )
        assert result.ok
        assert result.versions == (1, 2, 1)

    @pytest.mark.anyio
    async def test_delete(self, store: Store) -> None:
        await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=1)]), now=0)
        await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=2)]), now=0)
        wrong = await store.commit(Batch(puts=[Put(namespace="ns", key="k", delete=True, expected_version=1)]), now=0)
        assert not wrong.ok
        assert await store.get("ns", "k") is not None
        gone = await store.commit(Batch(puts=[Put(namespace="ns", key="k", delete=True, expected_version=2)]), now=0)
        assert gone.ok
        assert gone.versions == (0,)
        assert await store.get("ns", "k") is None
        assert await store.scan("ns") == []
        # Deleting what is not there is fine unconditionally, and matches expected_version 0.
        assert (await store.commit(Batch(puts=[Put(namespace="ns", key="k", delete=True)]), now=0)).ok
        nothing = Batch(puts=[Put(namespace="ns", key="k", delete=True, expected_version=0)])
        assert (await store.commit(nothing, now=0)).ok
        # A new document after a delete starts over at version 1.
        again = await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=3, expected_version=0)]), now=0)
        assert again.versions == (1,)

    @pytest.mark.anyio
    async def test_scan_prefix_ordered_by_code_point(self, store: Store) -> None:
        keys = ["b", "a", "ab", "a/2", "a/10", "é", "😀", "Z", "a\u00e9", "", "aa"]
        await store.commit(Batch(puts=[Put(namespace="ns", key=k, value=k) for k in keys]), now=0)
        await store.commit(Batch(puts=[Put(namespace="other", key="a", value=0)]), now=0)
        everything = await store.scan("ns")
        assert [k for k, _ in everything] == sorted(keys)
        assert all(doc.value == k and doc.version == 1 for k, doc in everything)
        assert [k for k, _ in await store.scan("ns", prefix="a")] == sorted(k for k in keys if k.startswith("a"))
        assert [k for k, _ in await store.scan("ns", prefix="a/")] == ["a/10", "a/2"]
        assert [k for k, _ in await store.scan("ns", prefix="é")] == ["é"]
        assert await store.scan("ns", prefix="zz") == []
        assert await store.scan("missing") == []

    @pytest.mark.anyio
    async def test_json_round_trip(self, store: Store) -> None:
        puts = [Put(namespace="json", key=f"{i:03}", value=v) for i, v in enumerate(JSON_SAMPLES)]
        assert (await store.commit(Batch(puts=puts), now=0)).ok
        for put in puts:
            doc = await store.get("json", put.key)
            assert doc is not None
            expected = json.loads(json.dumps(put.value))
            assert doc.value == expected
            assert json.dumps(doc.value) == json.dumps(expected)  # same key order, same float text
        scanned = await store.scan("json")
        assert [d.value for _, d in scanned] == [json.loads(json.dumps(v)) for v in JSON_SAMPLES]

    @pytest.mark.anyio
    async def test_value_that_is_not_json_fails_the_whole_commit(self, store: Store) -> None:
        bad_value = Batch(
            puts=[Put(namespace="ns", key="ok", value=1), Put(namespace="ns", key="bad", value={1, 2})],
            transcript=[_entry("c", 1)],
            jobs=[_job("q")],
        )
        with pytest.raises((TypeError, UsageError)):
            await store.commit(bad_value, now=0)
        bad_payload = Batch(
            puts=[Put(namespace="ns", key="ok", value=1)],
            inbox=[InboxKey(source="s", event_id="e")],
            jobs=[_job("q"), NewJob(queue_key="q", connector="c", kind="k", payload={"when": object()})],
        )
        with pytest.raises((TypeError, UsageError)):
            await store.commit(bad_payload, now=0)
        assert await store.get("ns", "ok") is None
        assert await store.transcript("c") == []
        assert await store.pending_jobs() == 0
        assert (await store.commit(Batch(inbox=[InboxKey(source="s", event_id="e")]), now=0)).ok

    @pytest.mark.anyio
    async def test_returned_values_are_copies(self, store: Store) -> None:
        await store.commit(Batch(puts=[Put(namespace="ns", key="k", value={"list": [1]})]), now=0)
        doc = await store.get("ns", "k")
        assert doc is not None
        doc.value["list"].append(2)
        again = await store.get("ns", "k")
        assert again is not None
        assert again.value == {"list": [1]}

    # -- transcript ---------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_transcript_seq_per_conversation(self, store: Store) -> None:
        first = await store.commit(Batch(transcript=[_entry("c1", 1), _entry("c2", 1), _entry("c1", 2)]), now=0)
        assert first.ok
        assert first.seqs == (1, 1, 2)
        second = await store.commit(Batch(transcript=[_entry("c1", 3)]), now=0)
        assert second.seqs == (3,)
        c1 = await store.transcript("c1")
        assert [(e.seq, e.message.id) for e in c1] == [(1, "m1"), (2, "m2"), (3, "m3")]
        assert [e.conversation_id for e in c1] == ["c1"] * 3
        assert [(e.seq, e.message.id) for e in await store.transcript("c2")] == [(1, "m1")]
        assert [e.seq for e in await store.transcript("c1", after_seq=1)] == [2, 3]
        assert await store.transcript("c1", after_seq=3) == []
        assert await store.transcript("unknown") == []

    @pytest.mark.anyio
    async def test_transcript_entry_round_trip(self, store: Store) -> None:
        message = Message(
            id="m-1",
            text="héllo 😀\n\x00",
            attachments=(
                Attachment(name="a.bin", content=bytes(range(256)), content_type="application/octet-stream"),
                Attachment(name="link.png", url="https://example.com/x.png"),
                Attachment(name="empty", content=b""),
            ),
        )
        entry = TranscriptEntry(conversation_id="c", role="agent", message=message, agent_id="ag-7", at=12.5)
        bot = TranscriptEntry(conversation_id="c", role="bot", message=Message(id="m-2", text=""), at=13.0)
        result = await store.commit(Batch(transcript=[entry, bot]), now=99.0)
        assert result.seqs == (1, 2)
        stored = await store.transcript("c")
        assert stored[0] == TranscriptEntry(
            conversation_id="c", role="agent", message=message, agent_id="ag-7", at=12.5, seq=1
        )
        assert stored[0].message.attachments[0].content == bytes(range(256))
        assert stored[1] == TranscriptEntry(conversation_id="c", role="bot", message=bot.message, at=13.0, seq=2)

    # -- inbox --------------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_inbox_duplicate_fails_whole_batch(self, store: Store) -> None:
        key = InboxKey(source="slack", event_id="Ev1")
        assert (await store.commit(Batch(inbox=[key]), now=1.0)).ok
        batch = Batch(
            puts=[Put(namespace="ns", key="k", value=1)],
            transcript=[_entry("c", 1)],
            inbox=[InboxKey(source="slack", event_id="Ev2"), key],
            jobs=[_job("q")],
        )
        result = await store.commit(batch, now=2.0)
        assert not result.ok
        assert result.duplicate == key
        assert result.conflict is None
        assert await store.get("ns", "k") is None
        assert await store.transcript("c") == []
        assert await store.pending_jobs() == 0
        assert (await store.commit(Batch(inbox=[InboxKey(source="slack", event_id="Ev2")]), now=3.0)).ok
        # Same event id from another source is another event.
        assert (await store.commit(Batch(inbox=[InboxKey(source="telegram", event_id="Ev1")]), now=3.0)).ok

    @pytest.mark.anyio
    async def test_inbox_duplicate_within_one_batch(self, store: Store) -> None:
        key = InboxKey(source="s", event_id="e")
        result = await store.commit(Batch(inbox=[key, key], puts=[Put(namespace="ns", key="k", value=1)]), now=0)
        assert not result.ok
        assert result.duplicate == key
        assert await store.get("ns", "k") is None
        assert (await store.commit(Batch(inbox=[key]), now=0)).ok

    @pytest.mark.anyio
    async def test_conflict_reported_before_duplicate(self, store: Store) -> None:
        key = InboxKey(source="s", event_id="e")
        await store.commit(Batch(inbox=[key], puts=[Put(namespace="ns", key="k", value=1)]), now=0)
        result = await store.commit(
            Batch(inbox=[key], puts=[Put(namespace="ns", key="k", value=2, expected_version=0)]), now=0
        )
        assert not result.ok
        assert result.conflict == ("ns", "k")

    @pytest.mark.anyio
    async def test_prune_forgets_old_inbox_keys(self, store: Store) -> None:
        old = InboxKey(source="s", event_id="old")
        recent = InboxKey(source="s", event_id="recent")
        await store.commit(Batch(inbox=[old]), now=10.0)
        await store.commit(Batch(inbox=[recent]), now=20.0)
        assert await store.prune(inbox_before=15.0) == 1
        assert await store.prune(inbox_before=15.0) == 0
        assert (await store.commit(Batch(inbox=[old]), now=30.0)).ok
        assert (await store.commit(Batch(inbox=[recent]), now=30.0)).duplicate == recent

    @pytest.mark.anyio
    async def test_prune_keeps_pending_and_dead_jobs(self, store: Store) -> None:
        a, b, c = await _enqueue(store, _job("a"), _job("b"), _job("c"))
        claimed = await store.claim_jobs("w", now=0, lease_seconds=10, limit=3)
        assert _ids(claimed) == [a, b, c]
        assert await store.finish_job(a, "w", now=1)
        assert await store.dead_letter_job(b, "w", reason="boom", now=1)
        await store.prune(inbox_before=1e12)
        assert await store.pending_jobs() == 1
        assert _ids(await store.dead_letters()) == [b]
        assert await store.finish_job(c, "w", now=2)


class JobConformance:
    """The store conformance checks of the job queue and dead letters (part of :class:`StoreConformance`)."""

    # -- jobs ---------------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_job_ids_grow_and_fields_round_trip(self, store: Store) -> None:
        payload = {"text": "héllo 😀", "nested": {"list": [1, 2.5, None, True]}, "tuple": (1, 2)}
        first = await _enqueue(store, NewJob(queue_key="q1", connector="slack", kind="post", payload=payload), now=5)
        more = await _enqueue(store, _job("q2", 1), _job("q3", 2), now=6)
        ids = [*first, *more]
        assert ids == sorted(ids)
        assert len(set(ids)) == 3
        claimed = await store.claim_jobs("w", now=10, lease_seconds=5, limit=10)
        assert claimed[0] == Job(
            id=first[0],
            queue_key="q1",
            connector="slack",
            kind="post",
            payload=json.loads(json.dumps(payload)),
            attempts=0,
            not_before=0.0,
            created_at=5.0,
            last_error=None,
            dead=False,
            claims=1,
        )
        assert _ids(claimed) == ids
        assert [j.payload for j in claimed[1:]] == [{"n": 1}, {"n": 2}]

    @pytest.mark.anyio
    async def test_only_head_of_each_queue_key_is_claimable(self, store: Store) -> None:
        a1, b1, a2, c1, b2 = await _enqueue(store, _job("a"), _job("b"), _job("a"), _job("c"), _job("b"))
        claimed = await store.claim_jobs("w1", now=0, lease_seconds=30, limit=10)
        assert _ids(claimed) == [a1, b1, c1]
        assert await store.claim_jobs("w2", now=1, lease_seconds=30, limit=10) == []
        assert await store.finish_job(a1, "w1", now=2)
        assert _ids(await store.claim_jobs("w2", now=2, lease_seconds=30, limit=10)) == [a2]
        assert await store.finish_job(b1, "w1", now=3)
        assert await store.finish_job(c1, "w1", now=3)
        assert _ids(await store.claim_jobs("w2", now=3, lease_seconds=30, limit=10)) == [b2]
        assert await store.pending_jobs() == 2

    @pytest.mark.anyio
    async def test_claim_limit_takes_oldest_heads(self, store: Store) -> None:
        a, b, c = await _enqueue(store, _job("a"), _job("b"), _job("c"))
        assert await store.claim_jobs("w", now=0, lease_seconds=10, limit=0) == []
        assert _ids(await store.claim_jobs("w", now=0, lease_seconds=10, limit=2)) == [a, b]
        assert _ids(await store.claim_jobs("w", now=0, lease_seconds=10, limit=2)) == [c]

    @pytest.mark.anyio
    async def test_lease_expiry_and_reclaim(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        assert _ids(await store.claim_jobs("w1", now=100, lease_seconds=10, limit=1)) == [job_id]
        assert await store.claim_jobs("w2", now=109.5, lease_seconds=10, limit=1) == []
        # At the lease's end it is free again; the first owner has lost it.
        reclaimed = await store.claim_jobs("w2", now=110, lease_seconds=10, limit=1)
        assert _ids(reclaimed) == [job_id]
        assert not await store.finish_job(job_id, "w1", now=111)
        assert not await store.extend_lease(job_id, "w1", until=500)
        assert not await store.retry_job(job_id, "w1", not_before=0, error="x", now=111)
        assert not await store.dead_letter_job(job_id, "w1", reason="x", now=111)
        assert await store.finish_job(job_id, "w2", now=111)
        assert await store.pending_jobs() == 0

    @pytest.mark.anyio
    async def test_expired_lease_still_held_until_reclaimed(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        await store.claim_jobs("w1", now=0, lease_seconds=1, limit=1)
        assert await store.finish_job(job_id, "w1", now=50)

    @pytest.mark.anyio
    async def test_extend_lease(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        await store.claim_jobs("w1", now=0, lease_seconds=10, limit=1)
        assert not await store.extend_lease(job_id, "w2", until=100)
        assert await store.extend_lease(job_id, "w1", until=100)
        assert await store.claim_jobs("w2", now=50, lease_seconds=10, limit=1) == []
        assert _ids(await store.claim_jobs("w2", now=100, lease_seconds=10, limit=1)) == [job_id]
        assert not await store.extend_lease(10**9, "w2", until=1000)

    @pytest.mark.anyio
    async def test_not_before(self, store: Store) -> None:
        later, after = await _enqueue(store, _job("q", not_before=100.0), _job("q"))
        (other,) = await _enqueue(store, _job("r", not_before=50.0))
        assert await store.next_job_time() == 50.0
        assert await store.claim_jobs("w", now=49.9, lease_seconds=10, limit=10) == []
        # A head waiting for its time blocks the jobs behind it.
        assert _ids(await store.claim_jobs("w", now=50, lease_seconds=10, limit=10)) == [other]
        assert await store.finish_job(other, "w", now=50)
        assert await store.next_job_time() == 100.0
        assert _ids(await store.claim_jobs("w", now=100, lease_seconds=10, limit=10)) == [later]
        assert await store.finish_job(later, "w", now=100)
        assert await store.next_job_time() == 0.0
        assert _ids(await store.claim_jobs("w", now=100, lease_seconds=10, limit=10)) == [after]

    @pytest.mark.anyio
    async def test_pending_jobs_and_next_job_time(self, store: Store) -> None:
        assert await store.pending_jobs() == 0
        assert await store.next_job_time() is None
        a, _ = await _enqueue(store, _job("a", not_before=7.0), _job("b", not_before=3.0))
        await _enqueue(store, _job("a", not_before=1.0))
        assert await store.pending_jobs() == 3
        assert await store.next_job_time() == 3.0
        await store.claim_jobs("w", now=10, lease_seconds=10, limit=10)
        assert await store.pending_jobs() == 3  # leased jobs still count
        assert await store.finish_job(a, "w", now=10)
        assert await store.pending_jobs() == 2

    @pytest.mark.anyio
    async def test_finish_job_applies_batch_atomically(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        await store.claim_jobs("w", now=0, lease_seconds=10, limit=1)
        await store.commit(Batch(puts=[Put(namespace="ns", key="taken", value=1)]), now=0)
        bad = Batch(
            puts=[
                Put(namespace="ns", key="new", value=1),
                Put(namespace="ns", key="taken", value=2, expected_version=0),
            ],
            transcript=[_entry("c", 1)],
            jobs=[_job("next")],
        )
        assert not await store.finish_job(job_id, "w", batch=bad, now=1)
        assert await store.get("ns", "new") is None
        assert await store.transcript("c") == []
        assert await store.pending_jobs() == 1
        key = InboxKey(source="s", event_id="e")
        await store.commit(Batch(inbox=[key]), now=0)
        assert not await store.finish_job(job_id, "w", batch=Batch(inbox=[key], jobs=[_job("x")]), now=1)
        assert await store.pending_jobs() == 1
        # Still held: a good batch goes through.
        good = Batch(
            puts=[Put(namespace="ns", key="taken", value=2, expected_version=1)],
            transcript=[_entry("c", 1)],
            jobs=[_job("next")],
        )
        assert await store.finish_job(job_id, "w", batch=good, now=2)
        doc = await store.get("ns", "taken")
        assert doc is not None
        assert doc.version == 2
        assert [e.seq for e in await store.transcript("c")] == [1]
        assert await store.pending_jobs() == 1
        (follow_up,) = await store.claim_jobs("w", now=3, lease_seconds=10, limit=5)
        assert follow_up.queue_key == "next"
        assert follow_up.created_at == 2.0
        assert not await store.finish_job(job_id, "w", now=4)  # already finished

    @pytest.mark.anyio
    async def test_finish_refused_for_non_owner(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        assert not await store.finish_job(job_id, "w1", now=0)  # not claimed at all
        await store.claim_jobs("w1", now=0, lease_seconds=10, limit=1)
        batch = Batch(puts=[Put(namespace="ns", key="k", value=1)])
        assert not await store.finish_job(job_id, "w2", batch=batch, now=1)
        assert await store.get("ns", "k") is None
        assert await store.pending_jobs() == 1
        assert not await store.finish_job(10**9, "w1", now=1)
        assert await store.finish_job(job_id, "w1", now=1)

    @pytest.mark.anyio
    async def test_retry_job(self, store: Store) -> None:
        job_id, behind = await _enqueue(store, _job("q"), _job("q"))
        await store.claim_jobs("w", now=0, lease_seconds=10, limit=5)
        assert not await store.retry_job(job_id, "other", not_before=20, error="nope", now=1)
        assert await store.retry_job(job_id, "w", not_before=20, error="rate limited", now=1)
        assert not await store.retry_job(job_id, "w", not_before=20, error="again", now=1)  # lease released
        assert await store.pending_jobs() == 2
        assert await store.next_job_time() == 20.0
        assert await store.claim_jobs("w", now=19, lease_seconds=10, limit=5) == []  # `behind` waits too
        (again,) = await store.claim_jobs("w2", now=20, lease_seconds=10, limit=5)
        assert (again.id, again.attempts, again.last_error, again.not_before) == (job_id, 1, "rate limited", 20.0)
        assert await store.retry_job(job_id, "w2", not_before=30, error="second", now=21)
        (third,) = await store.claim_jobs("w3", now=30, lease_seconds=10, limit=5)
        assert (third.attempts, third.last_error) == (2, "second")
        assert await store.finish_job(job_id, "w3", now=31)
        assert _ids(await store.claim_jobs("w3", now=31, lease_seconds=10, limit=5)) == [behind]

    @pytest.mark.anyio
    @pytest.mark.parametrize("not_before", [math.inf, -math.inf, math.nan])
    async def test_retry_job_refuses_a_time_that_never_comes(self, store: Store, not_before: float) -> None:
        # A job put off for ever would block its queue with nothing dead-lettered: refused, the lease kept.
        (job_id,) = await _enqueue(store, _job("q"))
        await store.claim_jobs("w", now=0, lease_seconds=10, limit=1)
        with pytest.raises(UsageError):
            await store.retry_job(job_id, "w", not_before=not_before, error="rate limited", now=1)
        assert await store.retry_job(job_id, "w", not_before=5, error="rate limited", now=1)
        (again,) = await store.claim_jobs("w", now=5, lease_seconds=10, limit=1)
        assert (again.id, again.attempts) == (job_id, 1)

    @pytest.mark.anyio
    async def test_dead_letters_do_not_block_and_can_be_requeued(self, store: Store) -> None:
        first, second, third = await _enqueue(store, _job("q", 1), _job("q", 2), _job("q", 3))
        (other,) = await _enqueue(store, _job("r", 9))
        assert _ids(await store.claim_jobs("w", now=0, lease_seconds=10, limit=5)) == [first, other]
        assert not await store.dead_letter_job(first, "intruder", reason="x", now=1)
        assert await store.dead_letter_job(first, "w", reason="invalid_blocks", now=1)
        assert not await store.dead_letter_job(first, "w", reason="x", now=1)
        (parked,) = await store.dead_letters()
        assert (parked.id, parked.dead, parked.last_error, parked.attempts) == (first, True, "invalid_blocks", 1)
        assert parked.payload == {"n": 1}
        assert await store.pending_jobs() == 3
        assert not await store.finish_job(first, "w", now=1)
        # The dead letter no longer blocks its queue key.
        assert _ids(await store.claim_jobs("w", now=2, lease_seconds=10, limit=5)) == [second]
        assert await store.requeue_dead_letter(first, now=3)
        assert not await store.requeue_dead_letter(first, now=3)
        assert not await store.requeue_dead_letter(10**9, now=3)
        assert not await store.requeue_dead_letter(third, now=3)  # pending, not parked
        assert await store.dead_letters() == []
        assert await store.pending_jobs() == 4
        # It runs after what was pending for its key: second (held), then third, then the requeued one.
        assert await store.finish_job(second, "w", now=4)
        assert _ids(await store.claim_jobs("w", now=4, lease_seconds=10, limit=5)) == [third]
        assert await store.finish_job(third, "w", now=5)
        (requeued,) = await store.claim_jobs("w", now=5, lease_seconds=10, limit=5)
        assert requeued.id > third
        assert (requeued.queue_key, requeued.payload, requeued.dead) == ("q", {"n": 1}, False)
        assert (requeued.attempts, requeued.last_error) == (1, "invalid_blocks")
        assert requeued.not_before == 3.0
        assert requeued.created_at == 3.0
        assert await store.finish_job(requeued.id, "w", now=6)
        assert await store.finish_job(other, "w", now=6)
        assert await store.pending_jobs() == 0
        assert await store.next_job_time() is None

    @pytest.mark.anyio
    async def test_a_parked_jobs_not_before_is_the_time_it_was_parked(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q", not_before=5), now=1)
        await store.claim_jobs("w", now=6, lease_seconds=10, limit=1)
        assert await store.retry_job(job_id, "w", not_before=50, error="busy", now=7)
        await store.claim_jobs("w", now=50, lease_seconds=10, limit=1)
        assert await store.dead_letter_job(job_id, "w", reason="gone", now=52.5)
        (parked,) = await store.dead_letters()
        assert (parked.not_before, parked.attempts, parked.last_error, parked.created_at) == (52.5, 2, "gone", 1.0)

    @pytest.mark.anyio
    async def test_dead_letter_job_applies_batch_atomically(self, store: Store) -> None:
        (job_id,) = await _enqueue(store, _job("q"))
        await store.claim_jobs("w", now=0, lease_seconds=10, limit=1)
        await store.commit(Batch(puts=[Put(namespace="ns", key="taken", value=1)]), now=0)
        report = Batch(puts=[Put(namespace="ns", key="taken", value=2, expected_version=1)], jobs=[_job("report", 7)])
        # Not the holder: neither the park nor the batch.
        assert not await store.dead_letter_job(job_id, "intruder", reason="x", now=1, batch=report)
        # A batch that conflicts: nothing written, the job still held and pending.
        stale = Batch(puts=[Put(namespace="ns", key="taken", value=3, expected_version=0)], jobs=[_job("report")])
        assert not await store.dead_letter_job(job_id, "w", reason="x", now=1, batch=stale)
        key = InboxKey(source="s", event_id="e")
        await store.commit(Batch(inbox=[key]), now=0)
        assert not await store.dead_letter_job(job_id, "w", reason="x", now=1, batch=Batch(inbox=[key]))
        assert await store.dead_letters() == []
        assert await store.pending_jobs() == 1
        doc = await store.get("ns", "taken")
        assert doc is not None
        assert (doc.value, doc.version) == (1, 1)
        # Parked and the batch applied, in one write.
        assert await store.dead_letter_job(job_id, "w", reason="gone", now=3, batch=report)
        (parked,) = await store.dead_letters()
        assert (parked.id, parked.last_error, parked.not_before) == (job_id, "gone", 3.0)
        doc = await store.get("ns", "taken")
        assert doc is not None
        assert (doc.value, doc.version) == (2, 2)
        (follow_up,) = await store.claim_jobs("w", now=3, lease_seconds=10, limit=5)
        assert (follow_up.queue_key, follow_up.payload, follow_up.created_at) == ("report", {"n": 7}, 3.0)
        # Parked once: a second park, with or without a batch, is refused and writes nothing.
        assert not await store.dead_letter_job(job_id, "w", reason="again", now=4, batch=Batch(jobs=[_job("x")]))
        assert await store.pending_jobs() == 1

    @pytest.mark.anyio
    async def test_dead_letters_oldest_first(self, store: Store) -> None:
        ids = await _enqueue(store, _job("a"), _job("b"), _job("c"))
        await store.claim_jobs("w", now=0, lease_seconds=10, limit=5)
        for job_id in reversed(ids):
            assert await store.dead_letter_job(job_id, "w", reason=f"r{job_id}", now=1)
        assert _ids(await store.dead_letters()) == list(ids)
        assert await store.next_job_time() is None
        assert await store.pending_jobs() == 0


class ConcurrencyConformance:
    """The store conformance checks of concurrent use (part of :class:`StoreConformance`)."""

    # -- concurrency --------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_concurrent_claims_never_share_a_job(self, store: Store) -> None:
        await _enqueue(store, *[_job(f"k{i % 7}", i) for i in range(40)])
        claimed: dict[str, list[int]] = {}

        async def worker(name: str) -> None:
            mine = claimed.setdefault(name, [])
            for _ in range(20):
                jobs = await store.claim_jobs(name, now=0, lease_seconds=1000, limit=2)
                for job in jobs:
                    mine.append(job.id)
                    assert await store.finish_job(job.id, name, now=0)

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(worker, f"w{n}")
        everything = [job_id for ids in claimed.values() for job_id in ids]
        assert len(everything) == len(set(everything))
        assert await store.pending_jobs() == 40 - len(everything)

    @pytest.mark.anyio
    async def test_concurrent_compare_and_swap(self, store: Store) -> None:
        async def increment() -> None:
            while True:
                doc = await store.get("counters", "c")
                version = 0 if doc is None else doc.version
                value = 0 if doc is None else doc.value
                put = Put(namespace="counters", key="c", value=value + 1, expected_version=version)
                result = await store.commit(Batch(puts=[put]), now=0)
                if result.ok:
                    return
                assert result.conflict == ("counters", "c")

        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(increment)
        doc = await store.get("counters", "c")
        assert doc is not None
        assert (doc.value, doc.version) == (12, 12)

    @pytest.mark.anyio
    async def test_concurrent_transcript_appends(self, store: Store) -> None:
        async def append(n: int) -> None:
            assert (await store.commit(Batch(transcript=[_entry("c", n)]), now=0)).ok

        async with anyio.create_task_group() as tg:
            for n in range(15):
                tg.start_soon(append, n)
        entries = await store.transcript("c")
        assert [e.seq for e in entries] == list(range(1, 16))
        assert sorted(e.message.id for e in entries) == sorted(f"m{n}" for n in range(15))

    @pytest.mark.anyio
    async def test_concurrent_commits_are_as_if_one_after_another(self, store: Store) -> None:
        # Many batches at once (a store may write them in one transaction): each event id is accepted once,
        # each create-only document is created once, and a refused batch writes nothing.
        results: dict[int, Any] = {}

        async def commit(n: int) -> None:
            batch = Batch(
                puts=[Put(namespace="docs", key=f"d{n % 7}", value=n, expected_version=0)] if n % 2 else [],
                inbox=[InboxKey(source="s", event_id=f"e{n % 10}")],
                transcript=[_entry("c", n)],
                jobs=[_job(f"q{n % 3}", n)],
            )
            results[n] = await store.commit(batch, now=n)

        async with anyio.create_task_group() as tg:
            for n in range(40):
                tg.start_soon(commit, n)
        accepted = sorted(n for n, result in results.items() if result.ok)
        for n, result in results.items():
            if not result.ok:
                assert result.duplicate == InboxKey(source="s", event_id=f"e{n % 10}") or result.conflict == (
                    "docs",
                    f"d{n % 7}",
                )
        assert len({n % 10 for n in accepted}) == len(accepted)  # one batch per event id
        created = [n for n in accepted if n % 2]
        assert len({n % 7 for n in created}) == len(created)  # one creation per document
        for n in created:
            doc = await store.get("docs", f"d{n % 7}")
            assert doc is not None
            assert (doc.value, doc.version) == (n, 1)
        entries = await store.transcript("c")
        assert [e.seq for e in entries] == list(range(1, len(accepted) + 1))
        assert sorted(int(e.message.id[1:]) for e in entries) == accepted
        assert await store.pending_jobs() == len(accepted)
        job_ids = [job_id for n in accepted for job_id in results[n].job_ids]
        assert len(set(job_ids)) == len(accepted)
        for n in range(10):  # every event id was accepted by exactly one batch
            assert any(m % 10 == n for m in accepted) or all(
                results[m].conflict is not None for m in range(40) if m % 10 == n
            )

    @pytest.mark.anyio
    async def test_concurrent_inbound_batches_accept_each_event_once(self, store: Store) -> None:
        # The shape webhooks commit (one event id and its jobs), many at once, with repeats among them and of
        # events accepted earlier: each new event is accepted once, with all its jobs; a repeat writes nothing.
        for n in range(5):
            assert (await store.commit(Batch(inbox=[InboxKey(source="s", event_id=f"e{n}")]), now=0)).ok
        results: dict[int, Any] = {}

        async def commit(n: int) -> None:
            jobs = [_job(f"q{n % 3}", n * 10 + j) for j in range(n % 3)]
            batch = Batch(inbox=[InboxKey(source="s", event_id=f"e{n % 20}")], jobs=jobs)
            results[n] = await store.commit(batch, now=n)

        async with anyio.create_task_group() as tg:
            for n in range(60):
                tg.start_soon(commit, n)
        accepted = [n for n, result in results.items() if result.ok]
        assert sorted(n % 20 for n in accepted) == list(range(5, 20))
        for n, result in results.items():
            if not result.ok:
                assert result.duplicate == InboxKey(source="s", event_id=f"e{n % 20}")
                assert result.job_ids == ()
        job_ids = {job_id: n for n in accepted for job_id in results[n].job_ids}
        assert sum(len(results[n].job_ids) for n in accepted) == len(job_ids) == sum(n % 3 for n in accepted)
        assert await store.pending_jobs() == len(job_ids)
        jobs = []
        while claimed := await store.claim_jobs("w", now=1e9, lease_seconds=60, limit=100):
            for job in claimed:
                # Every id names the job its batch was told about.
                assert job.payload["n"] // 10 == job_ids[job.id]
                jobs.append(job.id)
                assert await store.finish_job(job.id, "w", now=0)
        assert sorted(jobs) == sorted(job_ids)

    @pytest.mark.anyio
    async def test_claims_count_every_lease(self, store: Store) -> None:
        # A worker tells a first run (claims == 1, attempts == 0) from one where an earlier run may have done part
        # of the work: its lease ran out, or it was released for a retry.
        await store.commit(Batch(jobs=[_job("q")]), now=0)
        (first,) = await store.claim_jobs("w1", now=0, lease_seconds=10, limit=5)
        assert (first.claims, first.attempts) == (1, 0)
        (again,) = await store.claim_jobs("w2", now=11, lease_seconds=10, limit=5)  # w1's lease ran out
        assert (again.id, again.claims, again.attempts) == (first.id, 2, 0)
        assert await store.retry_job(again.id, "w2", not_before=0, error="boom", now=12)
        (third,) = await store.claim_jobs("w3", now=13, lease_seconds=10, limit=5)
        assert (third.claims, third.attempts) == (3, 1)
        assert await store.dead_letter_job(third.id, "w3", reason="parked", now=14)
        assert await store.requeue_dead_letter(third.id, now=15)
        (requeued,) = await store.claim_jobs("w4", now=16, lease_seconds=10, limit=5)
        assert requeued.claims >= 1 and requeued.attempts == 2


class StoreConformance(RateCellConformance, DocumentConformance, JobConformance, ConcurrencyConformance):
    """Subclass it and override the ``store`` fixture with an async fixture yielding an open, empty store."""

    @pytest.fixture
    async def store(self) -> Store:
        raise NotImplementedError("override the `store` fixture: yield an open, empty Store")

    # -- lifecycle ----------------------------------------------------------------------------------------

    @pytest.mark.anyio
    async def test_is_a_store_and_open_close_idempotent(self, store: Store) -> None:
        assert isinstance(store, Store)
        await store.open()
        await store.open()
        assert await store.get("ns", "k") is None

    @pytest.mark.anyio
    async def test_empty_batch_commits(self, store: Store) -> None:
        result = await store.commit(Batch(), now=1.0)
        assert result.ok
        assert (result.versions, result.seqs, result.job_ids) == ((), (), ())
