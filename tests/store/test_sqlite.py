from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from norbit_connectors._models import Attachment, Message
from norbit_connectors.exceptions import ConfigurationError, UsageError
from norbit_connectors.store import Batch, InboxKey, NewJob, Put, SQLiteStore, Store, TranscriptEntry
from norbit_connectors.testing.store_conformance import StoreConformance


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        async with SQLiteStore(tmp_path / "store.sqlite3") as store:
            yield store


def _job(queue_key: str, n: int = 0) -> NewJob:
    return NewJob(queue_key=queue_key, connector="slack", kind="post", payload={"n": n})


@pytest.mark.anyio
async def test_everything_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    message = Message(id="m", text="hi", attachments=(Attachment(name="f", content=b"\x00\x01"),))
    async with SQLiteStore(path) as store:
        result = await store.commit(
            Batch(
                puts=[Put(namespace="ns", key="k", value={"a": [1, "é"]})],
                transcript=[TranscriptEntry(conversation_id="c", role="customer", message=message, at=1.0)],
                inbox=[InboxKey(source="slack", event_id="e")],
                jobs=[_job("held"), _job("parked"), _job("waiting")],
            ),
            now=1.0,
        )
        held, parked, waiting = result.job_ids
        claimed = await store.claim_jobs("w1", now=2, lease_seconds=100, limit=2)
        assert [j.id for j in claimed] == [held, parked]
        assert await store.dead_letter_job(parked, "w1", reason="bad", now=3)
    async with SQLiteStore(str(path)) as store:
        doc = await store.get("ns", "k")
        assert doc is not None
        assert (doc.value, doc.version) == ({"a": [1, "é"]}, 1)
        (entry,) = await store.transcript("c")
        assert entry.message == message
        assert (await store.commit(Batch(inbox=[InboxKey(source="slack", event_id="e")]), now=4)).duplicate
        assert [j.id for j in await store.dead_letters()] == [parked]
        assert await store.pending_jobs() == 2
        # The lease of w1 survived too.
        assert [j.id for j in await store.claim_jobs("w2", now=50, lease_seconds=10, limit=5)] == [waiting]
        assert await store.finish_job(held, "w1", now=51)
        (new_id,) = (await store.commit(Batch(jobs=[_job("x")]), now=5)).job_ids
        assert new_id > waiting


@pytest.mark.anyio
async def test_ids_are_never_reused(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        (first,) = (await store.commit(Batch(jobs=[_job("q")]), now=0)).job_ids
        await store.claim_jobs("w", now=0, lease_seconds=1, limit=1)
        assert await store.finish_job(first, "w", now=0)
        (second,) = (await store.commit(Batch(jobs=[_job("q")]), now=0)).job_ids
        assert second > first


@pytest.mark.anyio
async def test_two_instances_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with SQLiteStore(path) as one, SQLiteStore(path) as two:
        await one.commit(Batch(puts=[Put(namespace="ns", key="k", value=1)]), now=0)
        doc = await two.get("ns", "k")
        assert doc is not None
        assert doc.value == 1
        conflict = await two.commit(Batch(puts=[Put(namespace="ns", key="k", value=2, expected_version=0)]), now=0)
        assert conflict.conflict == ("ns", "k")
        ids = (await two.commit(Batch(jobs=[_job(f"k{i % 5}", i) for i in range(30)]), now=0)).job_ids
        claimed: list[tuple[str, int]] = []

        async def worker(store: SQLiteStore, name: str) -> None:
            while await store.pending_jobs():
                for job in await store.claim_jobs(name, now=0, lease_seconds=1000, limit=3):
                    claimed.append((name, job.id))
                    assert await store.finish_job(job.id, name, now=0)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(worker, one, f"one-{n}")
                tg.start_soon(worker, two, f"two-{n}")
        assert sorted(job_id for _, job_id in claimed) == sorted(ids)
        # Per key, jobs finished in id order.
        per_key: dict[int, list[int]] = {}
        for _, job_id in claimed:
            per_key.setdefault((job_id - ids[0]) % 5, []).append(job_id)
        assert all(v == sorted(v) for v in per_key.values())


_WORKER = """
import sys, anyio
from norbit_connectors.store import SQLiteStore

async def main(path, name):
    done = []
    async with SQLiteStore(path) as store:
        while await store.pending_jobs():
            for job in await store.claim_jobs(name, now=0, lease_seconds=10**6, limit=2):
                assert await store.finish_job(job.id, name, now=0)
                done.append(job.id)
    print(" ".join(map(str, done)))

anyio.run(main, sys.argv[1], sys.argv[2])
"""


@pytest.mark.anyio
async def test_processes_never_double_claim(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    async with SQLiteStore(path) as store:
        ids = (await store.commit(Batch(jobs=[_job(f"k{i % 9}", i) for i in range(120)]), now=0)).job_ids
    results = []
    async with anyio.create_task_group() as tg:

        async def run(name: str) -> None:
            proc = await anyio.run_process([sys.executable, "-c", _WORKER, str(path), name], check=True)
            results.append([int(x) for x in proc.stdout.split()])

        for n in range(4):
            tg.start_soon(run, f"p{n}")
    everything = [job_id for done in results for job_id in done]
    assert sorted(everything) == sorted(ids)


@pytest.mark.anyio
async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    with pytest.raises(UsageError, match="not open"):
        await store.get("ns", "k")
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(UsageError, match="not open"):
        await store.pending_jobs()
    await store.open()
    assert await store.pending_jobs() == 0
    await store.close()


@pytest.mark.anyio
async def test_bad_paths_raise_configuration_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "not-a-db"
    garbage.write_bytes(b"this is not a database file at all" * 100)
    with pytest.raises(ConfigurationError, match="not a usable SQLite database"):
        await SQLiteStore(garbage).open()
    with pytest.raises(ConfigurationError, match="cannot open"):
        await SQLiteStore(tmp_path / "missing-dir" / "db.sqlite3").open()
    with pytest.raises(ConfigurationError):
        SQLiteStore("")
    with pytest.raises(ConfigurationError):
        SQLiteStore(42)  # type: ignore[arg-type]
    assert repr(SQLiteStore(tmp_path / "x.db")) == f"SQLiteStore({str(tmp_path / 'x.db')!r})"


@pytest.mark.anyio
async def test_unencodable_text_is_a_usage_error(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        with pytest.raises(UsageError, match="lone surrogates"):
            await store.commit(Batch(puts=[Put(namespace="ns", key="\ud800", value=1)]), now=0)
        with pytest.raises(UsageError, match="lone surrogates"):
            await store.get("\udfff", "k")
        # The store is still usable, and nothing was written.
        assert await store.scan("ns") == []


_COMMITTER = """
import sys, anyio
from norbit_connectors.store import Batch, NewJob, Put, SQLiteStore

async def main(path):
    async with SQLiteStore(path) as store:
        for n in range(1, 100_000):
            job = NewJob(queue_key=f"k{n % 3}", connector="c", kind="k", payload={"n": n})
            result = await store.commit(Batch(puts=[Put(namespace="ns", key="last", value=n)], jobs=[job]), now=n)
            assert result.ok
            print(n, flush=True)

anyio.run(main, sys.argv[1])
"""


@pytest.mark.anyio
async def test_acknowledged_commits_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    async with await anyio.open_process([sys.executable, "-c", _COMMITTER, str(path)]) as proc:
        assert proc.stdout is not None
        acknowledged = 0
        buffer = b""
        while acknowledged < 200:
            buffer += await proc.stdout.receive()
            *lines, buffer = buffer.split(b"\n")
            if lines:
                acknowledged = int(lines[-1])
        proc.kill()  # SIGKILL: no cleanup, possibly in the middle of a transaction
        await proc.wait()
    async with SQLiteStore(path) as store:
        doc = await store.get("ns", "last")
        assert doc is not None
        # Every acknowledged commit is there; the one in flight is either complete or absent.
        assert doc.value >= acknowledged
        assert doc.version == doc.value
        assert await store.pending_jobs() == doc.value
        claimed = await store.claim_jobs("w", now=1e9, lease_seconds=1, limit=10)
        assert [j.payload["n"] for j in claimed] == [1, 2, 3]


@pytest.mark.anyio
async def test_concurrent_commits_share_transactions(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        job_ids: dict[int, int] = {}

        async def commit(n: int) -> None:
            batch = Batch(inbox=[InboxKey(source="s", event_id=f"e{n}")], jobs=[_job(f"q{n % 4}", n)])
            result = await store.commit(batch, now=n)
            assert result.ok
            (job_ids[n],) = result.job_ids

        async with anyio.create_task_group() as tg:
            for n in range(64):
                tg.start_soon(commit, n)
        assert store._group_commits >= 1  # several batches really went into one transaction
        assert len(set(job_ids.values())) == 64
        # Each queue's head is its batch committed first, as if the batches had been committed one by one.
        claimed = await store.claim_jobs("w", now=1e9, lease_seconds=10, limit=10)
        heads = {q: min(job_ids[n] for n in range(q, 64, 4)) for q in range(4)}
        assert sorted(job.id for job in claimed) == sorted(heads.values())
        assert all(job_ids[job.payload["n"]] == job.id for job in claimed)


def _document_batch(n: int, bad: bool) -> Batch:
    key = "\ud800" if bad else f"k{n}"
    return Batch(puts=[Put(namespace="ns", key=key, value=n)], inbox=[InboxKey(source="s", event_id=key)])


def _inbound_batch(n: int, bad: bool) -> Batch:
    payload: dict[str, object] = {"n": n, "bad": object()} if bad else {"n": n}
    job = NewJob(queue_key=f"q{n}", connector="c", kind="k", payload=payload)
    return Batch(inbox=[InboxKey(source="s", event_id=f"e{n}")], jobs=[job])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make", "error"), [(_document_batch, UsageError), (_inbound_batch, TypeError)], ids=["documents", "inbound"]
)
async def test_a_bad_batch_in_a_shared_transaction_fails_alone(
    tmp_path: Path, make: Callable[[int, bool], Batch], error: type[Exception]
) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        outcomes: dict[int, object] = {}

        async def commit(n: int) -> None:
            try:
                outcomes[n] = await store.commit(make(n, n == 3), now=0)
            except error as exc:
                outcomes[n] = exc

        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(commit, n)
        assert store._group_commits >= 1
        assert isinstance(outcomes.pop(3), error)
        assert all(getattr(result, "ok", False) for result in outcomes.values())
        assert [key for key, _ in await store.scan("ns")] == sorted(
            f"k{n}" for n in range(10) if n != 3 and make is _document_batch
        )
        assert await store.pending_jobs() == (9 if make is _inbound_batch else 0)
        # The refused batch left nothing behind: it can be committed once mended.
        assert (await store.commit(make(3, False), now=0)).ok


@pytest.mark.anyio
async def test_a_cancelled_caller_still_gets_its_batch_committed(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        with anyio.CancelScope() as scope:
            scope.cancel()
            # Cancelled before it starts: a handed-over batch is written anyway, as with a worker thread's call.
            await store.commit(Batch(inbox=[InboxKey(source="s", event_id="e")], jobs=[_job("q")]), now=0)
        assert await store.pending_jobs() == 1


@pytest.mark.anyio
async def test_the_log_is_copied_back_by_a_background_thread(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "db.sqlite3"
    async with SQLiteStore(path) as store:
        assert any(t.name.startswith("norbit-sqlite-checkpoint") for t in threading.enumerate())
        padding = "x" * 2000
        for n in range(1500):
            job = NewJob(queue_key="q", connector="c", kind="k", payload={"n": n, "padding": padding})
            await store.commit(Batch(inbox=[InboxKey(source="s", event_id=f"e{n}")], jobs=[job]), now=n)
        # 3 MB of rows, far below SQLite's own automatic checkpoint (64 MB of log): only the background thread
        # copies the log into the database file, within a second or so of the last commit.
        with anyio.fail_after(10):
            while path.stat().st_size < 1_000_000:  # noqa: ASYNC110 (a file, nothing to wait on)
                await anyio.sleep(0.05)
    assert not any(t.name.startswith("norbit-sqlite-checkpoint") for t in threading.enumerate())


@pytest.mark.anyio
async def test_the_log_starts_over_under_a_steady_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from norbit_connectors.store import _sqlite

    # 16 MB instead of the default 64 MB, so that a few thousand commits show it.
    monkeypatch.setattr(_sqlite, "_AUTOCHECKPOINT_PAGES", 4_096)
    wal = tmp_path / "db.sqlite3-wal"
    async with SQLiteStore(tmp_path / "db.sqlite3") as store:
        largest = 0
        for n in range(6000):
            await store.commit(Batch(inbox=[InboxKey(source="s", event_id=f"e{n}")], jobs=[_job("q", n)]), now=n)
            if n % 100 == 0:
                largest = max(largest, wal.stat().st_size)
    # 6,000 commits write some 36,000 pages (150 MB) to the log; it starts over instead of growing that far.
    assert largest < 60_000_000, largest


@pytest.mark.anyio
async def test_a_commit_waits_for_another_process_holding_the_write_lock(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "db.sqlite3"
    async with SQLiteStore(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        released = False

        async def release_later() -> None:
            nonlocal released
            await anyio.sleep(0.3)
            released = True
            other.execute("COMMIT")

        async with anyio.create_task_group() as tg:
            tg.start_soon(release_later)
            result = await store.commit(Batch(jobs=[_job("q")]), now=0)
            assert released  # it waited for the lock rather than failing
        other.close()
        assert result.ok
        assert await store.pending_jobs() == 1


def test_event_loops_in_two_threads_may_share_a_store(tmp_path: Path) -> None:
    import threading

    store = SQLiteStore(tmp_path / "db.sqlite3")
    anyio.run(store.open)
    failures: list[BaseException] = []

    async def burst(name: str) -> None:
        async def commit(n: int) -> None:
            batch = Batch(inbox=[InboxKey(source=name, event_id=f"e{n}")], jobs=[_job(f"{name}{n % 3}", n)])
            assert (await store.commit(batch, now=0)).ok

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(commit, n)

    def run(name: str, backend: str) -> None:
        try:
            anyio.run(burst, name, backend=backend)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(name, backend)) for name, backend in (("a", "asyncio"), ("b", "trio"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert anyio.run(store.pending_jobs) == 400
    anyio.run(store.close)
