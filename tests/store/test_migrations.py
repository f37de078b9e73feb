from __future__ import annotations

import multiprocessing
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from norbit_connectors.exceptions import ConfigurationError
from norbit_connectors.store import Batch, NewJob, Put, SQLiteStore
from norbit_connectors.store._schema import SQLITE_MIGRATIONS
from norbit_connectors.store._sqlite import schema_version

LATEST = len(SQLITE_MIGRATIONS)


def _indexes(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


@pytest.mark.anyio
async def test_empty_file_migrates_to_latest(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    assert schema_version(path) == 0
    async with SQLiteStore(path) as store:
        assert await store.pending_jobs() == 0
    assert schema_version(path) == LATEST
    assert "jobs_live_heads" in _indexes(path)


@pytest.mark.anyio
async def test_version_one_database_migrates_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in SQLITE_MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO documents VALUES ('ns', 'k', '{\"old\": true}', 4)")
    conn.execute(
        "INSERT INTO jobs (queue_key, connector, kind, payload, created_at) VALUES ('q', 'slack', 'post', '{}', 1)"
    )
    conn.close()
    assert "jobs_live_heads" not in _indexes(path)
    async with SQLiteStore(path) as store:
        doc = await store.get("ns", "k")
        assert doc is not None
        assert (doc.value, doc.version) == ({"old": True}, 4)
        (job,) = await store.claim_jobs("w", now=1, lease_seconds=1, limit=5)
        assert (job.id, job.queue_key) == (1, "q")
    assert schema_version(path) == LATEST
    assert {"jobs_live_heads", "jobs_dead"} <= _indexes(path)


@pytest.mark.anyio
async def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.open()
    await store.commit(
        Batch(puts=[Put(namespace="ns", key="k", value=1)], jobs=[NewJob(queue_key="q", connector="c", kind="k")]),
        now=0,
    )
    await store.close()
    async with SQLiteStore(path) as again, SQLiteStore(path) as third:
        assert await again.pending_jobs() == 1
        doc = await third.get("ns", "k")
        assert doc is not None
        assert doc.version == 1
    assert schema_version(path) == LATEST


@pytest.mark.anyio
async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(ConfigurationError, match="newer than this library"):
        await SQLiteStore(path).open()
    assert schema_version(path) == LATEST + 1


_OPENER = """
import sys, anyio
from norbit_connectors.store import Batch, NewJob, SQLiteStore

async def main(path, n):
    async with SQLiteStore(path) as store:
        job = NewJob(queue_key="q", connector="c", kind="k", payload={"n": n})
        result = await store.commit(Batch(jobs=[job]), now=0)
        assert result.ok

anyio.run(main, sys.argv[1], int(sys.argv[2]))
"""


@pytest.mark.anyio
async def test_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"

    async def run(n: int) -> None:
        await anyio.run_process([sys.executable, "-c", _OPENER, str(path), str(n)], check=True)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(run, n)
    assert schema_version(path) == LATEST
    async with SQLiteStore(path) as store:
        assert await store.pending_jobs() == 8


def _open_and_write(path: str, n: int, barrier: Any, errors: Any) -> None:
    async def main() -> None:
        barrier.wait(timeout=30)  # every process opens the new file at the same instant
        async with SQLiteStore(path) as store:
            for i in range(20):
                job = NewJob(queue_key=f"q{n}", connector="c", kind="k", payload={"n": n, "i": i})
                assert (await store.commit(Batch(jobs=[job]), now=0)).ok

    try:
        anyio.run(main)
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")
        raise


def test_processes_opening_a_new_file_at_the_same_instant(tmp_path: Path) -> None:
    # Several processes switching a new file to WAL and migrating it together get "database is locked" from
    # SQLite without any wait; opening must wait that out instead of failing.
    context = multiprocessing.get_context("fork")
    for round_ in range(12):
        path = str(tmp_path / f"race-{round_}.sqlite3")
        barrier = context.Barrier(4)
        errors = context.Queue()
        procs = [context.Process(target=_open_and_write, args=(path, n, barrier, errors)) for n in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
        failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert failures == []
        assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
        assert schema_version(path) == LATEST
