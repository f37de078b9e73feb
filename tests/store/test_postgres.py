from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from norbit_connectors.exceptions import ConfigurationError, UsageError
from norbit_connectors.store import Batch, NewJob, PostgresStore, Put, Store
from norbit_connectors.testing.store_conformance import StoreConformance


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    async def store(self, postgres_dsn: str, reset_postgres: Callable[[str], None]) -> AsyncIterator[Store]:
        async with PostgresStore(postgres_dsn, max_size=4) as store:
            reset_postgres(postgres_dsn)
            yield store


def _job(queue_key: str, n: int = 0) -> NewJob:
    return NewJob(queue_key=queue_key, connector="slack", kind="post", payload={"n": n})


@pytest.mark.anyio
async def test_concurrent_opens_migrate_once(postgres_dsn: str) -> None:
    import psycopg

    stores = [PostgresStore(postgres_dsn, min_size=0, max_size=2) for _ in range(6)]
    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(store.open)
    with psycopg.connect(postgres_dsn) as conn:
        rows = conn.execute("SELECT version FROM norbit_schema_version").fetchall()
    assert len(rows) == 1
    for store in stores:
        assert await store.pending_jobs() >= 0
        await store.close()
        await store.close()


_WORKER = """
import sys, anyio
from norbit_connectors.store import PostgresStore

async def main(dsn, name):
    done = []
    async with PostgresStore(dsn, max_size=2) as store:
        while await store.pending_jobs():
            for job in await store.claim_jobs(name, now=0, lease_seconds=10**6, limit=2):
                assert await store.finish_job(job.id, name, now=0)
                done.append(job.id)
    print(" ".join(map(str, done)))

anyio.run(main, sys.argv[1], sys.argv[2], backend=sys.argv[3])
"""


@pytest.mark.anyio
async def test_processes_never_double_claim_and_keep_key_order(
    postgres_dsn: str, reset_postgres: Callable[[str], None], anyio_backend: str
) -> None:
    async with PostgresStore(postgres_dsn) as store:
        reset_postgres(postgres_dsn)
        ids = (await store.commit(Batch(jobs=[_job(f"k{i % 7}", i) for i in range(140)]), now=0)).job_ids
    results: list[list[int]] = []

    async def run(name: str) -> None:
        proc = await anyio.run_process([sys.executable, "-c", _WORKER, postgres_dsn, name, anyio_backend], check=True)
        results.append([int(x) for x in proc.stdout.split()])

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(run, f"p{n}")
    everything = [job_id for done in results for job_id in done]
    assert sorted(everything) == sorted(ids)
    # Within each worker, jobs of one key were finished in id order.
    for done in results:
        for k in range(7):
            mine = [job_id for job_id in done if (job_id - ids[0]) % 7 == k]
            assert mine == sorted(mine)


@pytest.mark.anyio
async def test_concurrent_producers_on_one_key_are_claimed_in_id_order(
    postgres_dsn: str, reset_postgres: Callable[[str], None]
) -> None:
    async with PostgresStore(postgres_dsn, max_size=8) as store:
        reset_postgres(postgres_dsn)
        produced: list[int] = []
        claimed: list[int] = []
        producing = 6

        async def produce(n: int) -> None:
            nonlocal producing
            for i in range(10):
                result = await store.commit(Batch(jobs=[_job("same", n * 100 + i)]), now=0)
                produced.extend(result.job_ids)
            producing -= 1

        async def consume(name: str) -> None:
            while True:
                quiet = producing == 0
                jobs = await store.claim_jobs(name, now=0, lease_seconds=1000, limit=5)
                # Noted as the claim returns: a job can only be claimed once the one before it is finished, so
                # this order is the queue's. (The order in which finish_job calls return is not: another
                # consumer may claim, finish and note the next job before this one's call has returned.)
                claimed.extend(job.id for job in jobs)
                if not jobs and quiet:
                    return
                for job in jobs:
                    assert await store.finish_job(job.id, name, now=0)
                await anyio.sleep(0.001)

        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(produce, n)
            for n in range(3):
                tg.start_soon(consume, f"c{n}")
        assert claimed == sorted(produced)


@pytest.mark.anyio
async def test_closed_store_refuses_calls(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn)
    with pytest.raises(UsageError, match="not open"):
        await store.get("ns", "k")
    await store.open()
    await store.commit(Batch(puts=[Put(namespace="ns", key="k", value=1)]), now=0)
    await store.close()
    with pytest.raises(UsageError, match="not open"):
        await store.get("ns", "k")


@pytest.mark.anyio
async def test_unreachable_server_is_a_configuration_error() -> None:
    store = PostgresStore("postgresql://nobody:s3cret-pw@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(ConfigurationError, match="cannot connect") as info:
        await store.open()
    assert "s3cret-pw" not in str(info.value)


def test_repr_hides_credentials() -> None:
    store = PostgresStore("postgresql://user:s3cret-pw@db.example.com:6543/app")
    assert "s3cret-pw" not in repr(store)
    assert "db.example.com" in repr(store)


@pytest.mark.parametrize("dsn", ["", "   ", "host=x port", 42])
def test_bad_dsn_is_a_configuration_error(dsn: object) -> None:
    with pytest.raises(ConfigurationError):
        PostgresStore(dsn)  # type: ignore[arg-type]


def test_bad_pool_sizes() -> None:
    with pytest.raises(ConfigurationError, match="min_size"):
        PostgresStore("postgresql://x@localhost/db", min_size=3, max_size=2)
    with pytest.raises(ConfigurationError):
        PostgresStore("postgresql://x@localhost/db", max_size=0)


def test_missing_psycopg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"norbit-connectors\[postgres\]"):
        PostgresStore("postgresql://x@localhost/db")


@pytest.mark.anyio
async def test_values_postgres_cannot_hold_are_usage_errors(postgres_dsn: str) -> None:
    async with PostgresStore(postgres_dsn) as store:
        with pytest.raises(UsageError, match="refused"):
            await store.commit(Batch(puts=[Put(namespace="ns", key="nul\x00", value=1)]), now=0)
        with pytest.raises(UsageError):
            await store.commit(Batch(puts=[Put(namespace="ns", key="\ud800", value=1)]), now=0)
        assert await store.get("ns", "nul") is None
        # NUL inside a JSON value is fine: values are stored as JSON text.
        assert (await store.commit(Batch(puts=[Put(namespace="ns", key="v", value="a\x00b")]), now=0)).ok


@pytest.mark.anyio
async def test_newer_schema_is_refused(postgres_dsn: str) -> None:
    import psycopg

    async with PostgresStore(postgres_dsn):
        pass
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("UPDATE norbit_schema_version SET version = version + 100")
    try:
        with pytest.raises(ConfigurationError, match="newer than this library"):
            await PostgresStore(postgres_dsn).open()
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE norbit_schema_version SET version = version - 100")
