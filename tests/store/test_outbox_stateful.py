"""The outbox as a state machine: producers and consumers against a model of per-key queues.

Each rule drives the store through a blocking portal running the chosen anyio backend. Invariants: per queue key
jobs finish in enqueue order (dead letters set aside, requeued ones going to the back), a job is never held by two
owners at once, and nothing is lost (pending + dead + finished == enqueued).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from norbit_connectors._models import Message
from norbit_connectors.store import Batch, Job, MemoryStore, NewJob, SQLiteStore, Store, TranscriptEntry

KEYS = ("a", "b", "c")
OWNERS = ("w1", "w2", "w3")
LEASE = 10.0

StoreFactory = Callable[[], tuple[Store, Callable[[], None]]]


def memory_factory() -> tuple[Store, Callable[[], None]]:
    return MemoryStore(), lambda: None


def sqlite_factory() -> tuple[Store, Callable[[], None]]:
    directory = tempfile.mkdtemp(prefix="norbit-outbox-")
    return SQLiteStore(Path(directory) / "outbox.sqlite3"), lambda: shutil.rmtree(directory, ignore_errors=True)


def postgres_factory(dsn: str, reset_postgres: Callable[[str], None]) -> StoreFactory:
    def factory() -> tuple[Store, Callable[[], None]]:
        from norbit_connectors.store import PostgresStore

        reset_postgres(dsn)
        return PostgresStore(dsn, max_size=4), lambda: None

    return factory


class OutboxMachine(RuleBasedStateMachine):
    backend = "asyncio"
    factory: StoreFactory = memory_factory

    def __init__(self) -> None:
        super().__init__()
        self.exit = ExitStack()
        self.portal: BlockingPortal = self.exit.enter_context(start_blocking_portal(self.backend))
        self.store, cleanup = type(self).factory()
        self.exit.callback(cleanup)
        self.call(self.store.open)
        self.exit.callback(self.call, self.store.close)
        self.now = 1000.0
        self.serial = 0
        self.queues: dict[str, list[int]] = {k: [] for k in KEYS}  # pending job serials, queue order
        self.key_of: dict[int, str] = {}
        self.id_of: dict[int, int | None] = {}  # None after a requeue, until the new id is seen
        self.not_before: dict[int, float] = {}
        self.attempts: dict[int, int] = {}
        self.leases: dict[int, tuple[str, float]] = {}
        self.dead: list[int] = []  # in the order they were parked
        self.finished: list[int] = []
        self.finished_by_key: dict[str, list[int]] = {k: [] for k in KEYS}

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return self.portal.call(fn, *args)

    def teardown(self) -> None:
        self.exit.close()

    # -- model helpers -----------------------------------------------------------------------------------

    def new_job(self, key: str, delay: float) -> NewJob:
        self.serial += 1
        self.key_of[self.serial] = key
        self.not_before[self.serial] = self.now + delay
        self.attempts[self.serial] = 0
        return NewJob(
            queue_key=key, connector="test", kind="send", payload={"n": self.serial}, not_before=self.now + delay
        )

    def record_enqueued(self, jobs: list[NewJob], ids: tuple[int, ...]) -> None:
        assert len(ids) == len(jobs)
        for job, job_id in sorted(zip(jobs, ids, strict=True), key=lambda pair: pair[1]):
            n = job.payload["n"]
            self.id_of[n] = job_id
            self.queues[job.queue_key].append(n)

    def heads(self) -> list[int]:
        return [queue[0] for queue in self.queues.values() if queue]

    def claimable(self, now: float) -> set[int]:
        found = set()
        for n in self.heads():
            lease = self.leases.get(n)
            if self.not_before[n] <= now and (lease is None or lease[1] <= now):
                found.add(n)
        return found

    def seen(self, job: Job) -> int:
        n = job.payload["n"]
        assert isinstance(n, int)
        assert self.key_of[n] == job.queue_key
        if self.id_of[n] is None:
            self.id_of[n] = job.id
        assert self.id_of[n] == job.id
        assert job.attempts == self.attempts[n]
        assert not job.dead
        return n

    def finish_model(self, n: int) -> None:
        queue = self.queues[self.key_of[n]]
        assert queue[0] == n, f"job {n} finished before {queue[0]} of its queue key"
        queue.pop(0)
        self.leases.pop(n, None)
        self.finished.append(n)
        self.finished_by_key[self.key_of[n]].append(n)

    def finish_batch(self, n: int) -> Batch:
        """Each finish appends to its queue key's order log in the same transaction: the log is the true order."""
        entry = TranscriptEntry(
            conversation_id=f"order-{self.key_of[n]}", role="system", message=Message(id=str(n), text="")
        )
        return Batch(transcript=[entry])

    def order_log(self, key: str, after_seq: int = 0) -> list[TranscriptEntry]:
        entries: list[TranscriptEntry] = self.call(lambda: self.store.transcript(f"order-{key}", after_seq=after_seq))
        return entries

    # -- rules -------------------------------------------------------------------------------------------

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4), delay=st.sampled_from([0.0, 0.0, 5.0, 30.0]))
    def enqueue(self, keys: list[str], delay: float) -> None:
        jobs = [self.new_job(key, delay) for key in keys]
        result = self.call(lambda: self.store.commit(Batch(jobs=jobs), now=self.now))
        assert result.ok
        assert list(result.job_ids) == sorted(result.job_ids)
        self.record_enqueued(jobs, result.job_ids)

    @rule(owner=st.sampled_from(OWNERS), limit=st.integers(1, 4))
    def claim(self, owner: str, limit: int) -> None:
        expected = self.claimable(self.now)
        jobs: list[Job] = self.call(
            lambda: self.store.claim_jobs(owner, now=self.now, lease_seconds=LEASE, limit=limit)
        )
        assert [j.id for j in jobs] == sorted(j.id for j in jobs)
        claimed = {self.seen(job) for job in jobs}
        assert len(claimed) == len(jobs)
        assert claimed <= expected, "claimed a job that is not a free head"
        assert len(claimed) == min(limit, len(expected))
        for n in claimed:
            self.leases[n] = (owner, self.now + LEASE)

    def pick(self, data: st.DataObject) -> tuple[int, str, bool]:
        # Leased jobs are heads too. Listing heads by queue key (not by serial) keeps the draws independent of
        # how concurrent producers were interleaved in earlier bursts.
        candidates = [queue[0] for _, queue in sorted(self.queues.items()) if queue]
        assert set(self.leases) <= set(candidates)
        n = data.draw(st.sampled_from(candidates))
        owner = data.draw(st.sampled_from([*OWNERS, self.leases.get(n, ("w1", 0))[0]]))
        holds = n in self.leases and self.leases[n][0] == owner
        return n, owner, holds

    def job_id(self, n: int) -> int:
        job_id = self.id_of[n]
        # A requeued job not claimed since has an unknown id: use one no job can have.
        return -1 if job_id is None else job_id

    @precondition(lambda self: self.leases or self.heads())
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        n, owner, holds = self.pick(data)
        ok = self.call(lambda: self.store.finish_job(self.job_id(n), owner, batch=self.finish_batch(n), now=self.now))
        assert ok == holds
        if ok:
            self.finish_model(n)

    @precondition(lambda self: self.leases or self.heads())
    @rule(data=st.data(), delay=st.sampled_from([0.0, 3.0, 20.0]))
    def retry(self, data: st.DataObject, delay: float) -> None:
        n, owner, holds = self.pick(data)
        at = self.now + delay
        ok = self.call(lambda: self.store.retry_job(self.job_id(n), owner, not_before=at, error="e", now=self.now))
        assert ok == holds
        if ok:
            del self.leases[n]
            self.attempts[n] += 1
            self.not_before[n] = at

    @precondition(lambda self: self.leases or self.heads())
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        n, owner, holds = self.pick(data)
        ok = self.call(lambda: self.store.dead_letter_job(self.job_id(n), owner, reason="r", now=self.now))
        assert ok == holds
        if ok:
            del self.leases[n]
            self.attempts[n] += 1
            self.queues[self.key_of[n]].remove(n)
            self.dead.append(n)

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), extra=st.sampled_from([1.0, 15.0]))
    def extend(self, data: st.DataObject, extra: float) -> None:
        n, owner, holds = self.pick(data)
        until = self.now + extra
        ok = self.call(lambda: self.store.extend_lease(self.job_id(n), owner, until=until))
        assert ok == holds
        if ok:
            self.leases[n] = (owner, until)

    @precondition(lambda self: self.dead)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        n = data.draw(st.sampled_from(self.dead))
        assert self.call(lambda: self.store.requeue_dead_letter(self.job_id(n), now=self.now))
        self.dead.remove(n)
        self.queues[self.key_of[n]].append(n)
        self.not_before[n] = self.now
        self.id_of[n] = None

    @rule(delta=st.sampled_from([1.0, 4.0, 11.0, 40.0]))
    def tick(self, delta: float) -> None:
        self.now += delta

    @rule(
        producers=st.lists(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3), min_size=1, max_size=3),
        consumers=st.integers(1, 3),
        retry_every=st.sampled_from([0, 2, 3]),
    )
    def concurrent_burst(self, producers: list[list[str]], consumers: int, retry_every: int) -> None:
        """Producers enqueue while consumers claim, finish and retry, all at once."""
        batches = [[self.new_job(key, 0.0) for key in keys] for keys in producers]
        now = self.now
        results: list[tuple[list[NewJob], tuple[int, ...]]] = []
        logged = {key: len(self.finished_by_key[key]) for key in KEYS}
        busy = {n for n, (_, until) in self.leases.items() if until > now}

        producing = len(batches)

        async def produce(jobs: list[NewJob]) -> None:
            nonlocal producing
            result = await self.store.commit(Batch(jobs=jobs), now=now)
            producing -= 1
            assert result.ok
            results.append((jobs, result.job_ids))

        async def consume(name: str) -> None:
            # Work until nothing is claimable and nobody holds anything: the burst always ends in the same
            # state, whatever the interleaving, which keeps the machine deterministic.
            count = 0
            while True:
                # Only a claim started after every producer committed may end this consumer's work; whoever
                # holds a job meanwhile keeps going and claims what its release makes free.
                quiet = producing == 0
                jobs = await self.store.claim_jobs(name, now=now, lease_seconds=LEASE, limit=2)
                if not jobs:
                    if quiet:
                        return
                    await anyio.sleep(0.001)
                    continue
                for job in jobs:
                    n = job.payload["n"]
                    assert n not in busy, f"job {n} claimed while leased"
                    count += 1
                    # Both calls succeed only while this consumer still holds the lease: a second owner taking
                    # the job meanwhile would make them fail.
                    if retry_every and count % retry_every == 0:
                        assert await self.store.retry_job(job.id, name, not_before=now, error="again", now=now)
                        self.attempts[n] += 1
                        self.not_before[n] = now
                    else:
                        batch = self.finish_batch(n)
                        assert await self.store.finish_job(job.id, name, batch=batch, now=now)

        async def burst() -> None:
            async with anyio.create_task_group() as tg:
                for jobs in batches:
                    tg.start_soon(produce, jobs)
                for c in range(consumers):
                    tg.start_soon(consume, f"burst{c}")

        self.call(burst)
        # Concurrent producers are ordered by the ids the store gave them.
        merged = sorted(
            ((job, job_id) for jobs, ids in results for job, job_id in zip(jobs, ids, strict=True)), key=lambda p: p[1]
        )
        for job, job_id in merged:
            self.record_enqueued([job], (job_id,))
        # The order log says in which order the finishes committed (the tasks may resume in another order).
        for key in KEYS:
            for entry in self.order_log(key, after_seq=logged[key]):
                n = int(entry.message.id)
                if self.id_of[n] is None:
                    self.id_of[n] = -2  # requeued and finished within the burst: id no longer needed
                self.finish_model(n)

    # -- invariants --------------------------------------------------------------------------------------

    @invariant()
    def nothing_lost(self) -> None:
        pending = sum(len(q) for q in self.queues.values())
        assert pending + len(self.dead) + len(self.finished) == self.serial
        assert len(set(self.finished)) == len(self.finished)
        assert self.call(self.store.pending_jobs) == pending
        dead = self.call(self.store.dead_letters)
        assert sorted(j.payload["n"] for j in dead) == sorted(self.dead)
        assert all(j.dead for j in dead)

    @invariant()
    def finishes_committed_in_queue_order(self) -> None:
        for key in KEYS:
            assert [int(e.message.id) for e in self.order_log(key)] == self.finished_by_key[key]

    @invariant()
    def next_job_time_is_the_earliest_head(self) -> None:
        heads = self.heads()
        expected = min((self.not_before[n] for n in heads), default=None)
        assert self.call(self.store.next_job_time) == expected


def _machine(factory: StoreFactory, backend: str) -> type[OutboxMachine]:
    return type("Machine", (OutboxMachine,), {"factory": staticmethod(factory), "backend": backend})


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(("kind", "examples"), [("memory", 60), ("sqlite", 25), ("postgres", 8)])
def test_outbox_state_machine(kind: str, examples: int, backend: str, request: pytest.FixtureRequest) -> None:
    factory: StoreFactory
    if kind == "memory":
        factory = memory_factory
    elif kind == "sqlite":
        factory = sqlite_factory
    else:
        factory = postgres_factory(request.getfixturevalue("postgres_dsn"), request.getfixturevalue("reset_postgres"))
    run_state_machine_as_test(
        _machine(factory, backend), settings=settings(max_examples=examples, stateful_step_count=30, deadline=None)
    )
