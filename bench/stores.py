"""Stores: outbox throughput (commit a job, claim a job, finish it) with 1, 2 and 4 worker processes.

Each process opens its own store instance: the same SQLite file, or the same PostgreSQL database (a fresh schema
per measurement); a MemoryStore cannot be shared, so its processes each have their own. The figure is finished
jobs per second over all processes during a fixed time after all of them opened their store.

PostgreSQL: ``NORBIT_TEST_POSTGRES_DSN`` if set, else a server on 127.0.0.1:54330 if one answers; otherwise the
rows are skipped.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from norbit_connectors.store import Batch, MemoryStore, NewJob, SQLiteStore, Store

from ._table import run_alone

__all__ = ["postgres_dsn", "run"]

LOCAL_DSN = "postgresql://postgres@127.0.0.1:54330/postgres"
PROCESSES = (1, 2, 4)


def postgres_dsn() -> str | None:
    """The DSN to measure PostgresStore on, or None when no server is reachable."""
    dsn = os.environ.get("NORBIT_TEST_POSTGRES_DSN") or LOCAL_DSN
    try:
        import psycopg
    except ImportError:
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return dsn
    except psycopg.Error:
        return None


def _make_store(kind: str, target: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(target)
    from norbit_connectors.store import PostgresStore

    return PostgresStore(target, min_size=1, max_size=2)


async def _cycle_loop(store: Store, worker: int, barrier: Barrier, seconds: float) -> int:
    owner = f"bench-{worker}-{os.getpid()}"
    done = 0
    async with _opened(store):
        # Every process has opened (and migrated) its store before anyone starts the clock.
        await anyio.to_thread.run_sync(lambda: barrier.wait(timeout=60))
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            i += 1
            job = NewJob(queue_key=f"w{worker}:{i}", connector="bench", kind="noop", payload={"n": i})
            await store.commit(Batch(jobs=[job]), now=time.time())
            claimed = await store.claim_jobs(owner, now=time.time(), lease_seconds=30.0, limit=1)
            for got in claimed:
                if await store.finish_job(got.id, owner, now=time.time()):
                    done += 1
    return done


class _opened:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def __aenter__(self) -> Store:
        await self.store.open()
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()


def _worker(kind: str, target: str, worker: int, barrier: Barrier, seconds: float, out: Any) -> None:
    done = anyio.run(_cycle_loop, _make_store(kind, target), worker, barrier, seconds)
    out.put(done)


def _measure(kind: str, target: str, processes: int, seconds: float) -> float:
    # fork starts in milliseconds; the parent holds no store connection, and each child opens its own.
    ctx: Any = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(processes)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, target, w, barrier, seconds, out)) for w in range(processes)]
    for proc in procs:
        proc.start()
    try:
        total = sum(int(out.get(timeout=120)) for _ in procs)
        for proc in procs:
            proc.join(timeout=30)
            if proc.exitcode != 0:
                raise RuntimeError(f"{kind} worker exited with {proc.exitcode}")
    finally:
        # A failed worker leaves the others waiting at the barrier: never leave them behind.
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=10)
    return total / seconds


def _fresh_schema(dsn: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    schema = f"norbit_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options={quote(f'-csearch_path={schema}')}", drop


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 1.0 if quick else 5.0
    rows: list[dict[str, Any]] = []
    notes = [
        f"jobs finished per second over {seconds:g} s; each cycle commits one job, claims one (any process's) "
        "and finishes it; one process per worker (multiprocessing, fork on Linux)",
        "MemoryStore processes each have their own store (it cannot be shared between processes)",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for processes in PROCESSES:
            rows.append(
                {
                    "store": "MemoryStore",
                    "processes": processes,
                    "jobs_per_s": _measure("memory", "", processes, seconds),
                }
            )
        for processes in PROCESSES:
            path = str(Path(tmp) / f"outbox-{processes}.sqlite3")
            rows.append(
                {
                    "store": "SQLiteStore",
                    "processes": processes,
                    "jobs_per_s": _measure("sqlite", path, processes, seconds),
                }
            )
    dsn = postgres_dsn()
    skipped = None
    if dsn is None:
        skipped = "no PostgreSQL (set NORBIT_TEST_POSTGRES_DSN or start a server on 127.0.0.1:54330)"
        for processes in PROCESSES:
            rows.append({"store": "PostgresStore", "processes": processes, "jobs_per_s": "skipped: no PostgreSQL"})
    else:
        for processes in PROCESSES:
            target, drop = _fresh_schema(dsn)
            try:
                rows.append(
                    {
                        "store": "PostgresStore",
                        "processes": processes,
                        "jobs_per_s": _measure("postgres", target, processes, seconds),
                    }
                )
            finally:
                drop()
        notes.append("PostgreSQL on loopback; a fresh schema per measurement")
    result: dict[str, Any] = {"rows": rows, "notes": notes}
    if skipped:
        result["postgres_skipped"] = skipped
    return result


def main() -> None:
    run_alone("stores", run, __doc__)


if __name__ == "__main__":
    main()
