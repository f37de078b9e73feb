"""Parked jobs: on_dead_letter hears of each one durably (at least once, normally exactly once, across hubs and
crashes), on every path that parks a job; a report that fails is tried again, and one that fails every attempt
is logged and dropped."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from norbit_connectors import Conversation, DeadLetter, Message, PermissionDenied, User, _callbacks
from norbit_connectors._events import HubEvent
from norbit_connectors.hub import Hub
from norbit_connectors.store import Batch, Job, MemoryStore, NewJob, SQLiteStore, Store

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio


def conv(cid: str = "c1") -> Conversation:
    return Conversation(id=cid, user=User(id="u1", name="Zoë"))


class Refusing(RecordingConnector):
    """Refuses every message whose text starts with "refuse": retrying cannot help."""

    async def _deliver(self, event: HubEvent, job: Job) -> None:
        self.attempts += 1
        message = getattr(event, "message", None)
        if message is not None and message.text.startswith("refuse"):
            raise PermissionDenied("missing_scope: chat:write", code="missing_scope", needed="chat:write")
        self.events.append(event)


class Letters:
    """An on_dead_letter that fails its first ``fail`` calls (all of them with ``fail=-1``)."""

    def __init__(self, *, fail: int = 0, hang: int = 0) -> None:
        self.letters: list[DeadLetter] = []
        self.fail = fail
        self.hang = hang

    async def __call__(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        if self.hang > 0:
            self.hang -= 1
            await anyio.sleep_forever()
        if self.fail != 0:
            self.fail -= 1
            raise RuntimeError("the pager is down")


async def test_a_raising_on_dead_letter_is_called_again_until_it_succeeds() -> None:
    letters = Letters(fail=2)
    async with Hub(connectors=[Refusing()], on_dead_letter=letters, retry_base=0.001) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        await hub.wait_idle()
        parked = await hub.dead_letters()
        await hub.customer_message(conv(), Message(id="m2", text="still here"))
        await hub.wait_idle()
        assert await hub.dead_letters() == parked
    assert len(parked) == 1
    assert letters.letters == [parked[0]] * 3


async def test_an_on_dead_letter_past_its_time_limit_is_called_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_callbacks, "REPORT_SECONDS", 0.2)
    letters = Letters(hang=1)
    async with Hub(connectors=[Refusing()], on_dead_letter=letters, retry_base=0.001) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert letters.letters == [parked[0]] * 2


async def test_a_report_failing_every_attempt_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    letters = Letters(fail=-1)
    with caplog.at_level(logging.WARNING, logger="norbit_connectors.hub"):
        async with Hub(connectors=[Refusing()], on_dead_letter=letters, max_attempts=3, retry_base=0.001) as hub:
            await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
            await hub.wait_idle()
            parked = await hub.dead_letters()
            assert await hub.store.pending_jobs() == 0
    # Reported three times, then dropped: no report of the report, and the job itself stays parked.
    assert len(parked) == 1
    assert letters.letters == [parked[0]] * 3
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert f"job {parked[0].id}" in dropped[0].getMessage()


class CrashesAfterThePark(SQLiteStore):
    """An SQLite store whose process dies the moment a park is written: the call never returns."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.parked = anyio.Event()

    async def dead_letter_job(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().dead_letter_job(*args, **kwargs)
        self.parked.set()
        await anyio.sleep_forever()
        return done


async def test_a_hub_stopped_right_after_a_park_still_reports_it_through_the_next_hub(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    store = CrashesAfterThePark(path)
    first, second = Letters(), Letters()
    async with Hub(store=store, connectors=[Refusing()], on_dead_letter=first, workers=1) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        with anyio.fail_after(10):
            await store.parked.wait()
    assert first.letters == []
    async with Hub(store=SQLiteStore(path), connectors=[Refusing()], on_dead_letter=second) as hub:
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert len(parked) == 1
    assert second.letters == parked


async def test_several_hubs_call_on_dead_letter_exactly_once_per_parked_job(
    shared_store: Callable[[], Store],
) -> None:
    letters = [Letters(), Letters(), Letters()]
    hubs = [Hub(store=shared_store(), connectors=[Refusing()], on_dead_letter=cb, poll_interval=0.01) for cb in letters]
    async with hubs[0], hubs[1], hubs[2]:
        for i in range(30):
            await hubs[i % 3].customer_message(conv(f"c{i}"), Message(id="m", text="refuse"))
        for hub in hubs:
            await hub.wait_idle()
        parked = await hubs[0].dead_letters()
    called = [d for cb in letters for d in cb.letters]
    assert len(parked) == 30
    assert sorted(d.id for d in called) == [d.id for d in parked]


# -- every path that parks a job ---------------------------------------------------------------------------


async def _enqueue(store: Store, job: NewJob) -> int:
    async with store:
        result = await store.commit(Batch(jobs=[job]), now=0.0)
    assert result.ok
    (job_id,) = result.job_ids
    return job_id


async def test_a_job_whose_stored_payload_is_damaged_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    job_id = await _enqueue(
        SQLiteStore(path), NewJob(queue_key="rec:c1", connector="rec", kind="customer_message", payload={})
    )
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET payload = '{not json' WHERE id = ?", (job_id,))
    db.close()
    letters = Letters()
    async with Hub(store=SQLiteStore(path), connectors=[Refusing()], on_dead_letter=letters) as hub:
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert [d.id for d in parked] == [job_id]
    assert letters.letters == parked
    assert "damaged" in parked[0].reason


async def test_a_job_for_a_connector_the_hub_does_not_have_is_reported() -> None:
    store = MemoryStore()
    job_id = await _enqueue(store, NewJob(queue_key="gone:c1", connector="gone", kind="customer_message", payload={}))
    letters = Letters()
    async with Hub(store=store, connectors=[Refusing()], on_dead_letter=letters) as hub:
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert [(d.id, d.connector, d.attempts) for d in parked] == [(job_id, "gone", 1)]
    assert letters.letters == parked
    assert "no connector named 'gone'" in parked[0].reason


async def test_an_unknown_hub_job_kind_is_parked_at_once_and_reported() -> None:
    store = MemoryStore()
    job_id = await _enqueue(store, NewJob(queue_key="hub:c1", connector="hub", kind="no_such_kind", payload={}))
    letters = Letters()
    async with Hub(store=store, on_dead_letter=letters, max_attempts=5, retry_base=0.001) as hub:
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert [(d.id, d.connector, d.kind, d.attempts) for d in parked] == [(job_id, "hub", "no_such_kind", 1)]
    assert "no_such_kind" in parked[0].reason
    assert letters.letters == parked


class Recording(MemoryStore):
    """A memory store that keeps the outcome of every park."""

    def __init__(self) -> None:
        super().__init__()
        self.parks: list[bool] = []
        self.parked = anyio.Event()

    async def dead_letter_job(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().dead_letter_job(*args, **kwargs)
        self.parks.append(done)
        self.parked.set()
        return done


class LosesItsLease(Refusing):
    """Another process takes the job over (its lease ran out) while this one works on it, then it fails."""

    async def _deliver(self, event: HubEvent, job: Job) -> None:
        taken = await self.context.store.claim_jobs("elsewhere", now=10**10, lease_seconds=60, limit=10)
        assert [j.id for j in taken] == [job.id]
        await super()._deliver(event, job)


async def test_a_job_whose_lease_was_lost_is_neither_parked_nor_reported_here() -> None:
    store = Recording()
    letters = Letters()
    async with Hub(store=store, connectors=[LosesItsLease()], on_dead_letter=letters) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        with anyio.fail_after(10):
            await store.parked.wait()
        # Whoever holds the job now decides what becomes of it.
        (held,) = await store.claim_jobs("elsewhere", now=2 * 10**10, lease_seconds=60, limit=10)
        assert await store.finish_job(held.id, "elsewhere", now=2 * 10**10)
        await hub.wait_idle()
        assert await hub.dead_letters() == []
    assert store.parks == [False]
    assert letters.letters == []


async def test_a_damaged_report_is_dropped_at_once_and_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    await _enqueue(store, NewJob(queue_key="hub:x", connector="hub", kind="dead_letter", payload={"letter": {}}))
    letters = Letters()
    with caplog.at_level(logging.ERROR, logger="norbit_connectors.hub"):
        async with Hub(store=store, on_dead_letter=letters, max_attempts=5, retry_base=0.001) as hub:
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    assert letters.letters == []
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] != []
    assert not [r for r in caplog.records if "raised (attempt" in r.getMessage()]
