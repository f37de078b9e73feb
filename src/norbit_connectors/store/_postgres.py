"""PostgresStore: the Store protocol on PostgreSQL, shared by any number of processes.

psycopg's async connection only runs on asyncio, so the synchronous driver runs in anyio worker threads, with a
small connection pool of its own. Concurrency between processes relies on row locks, ``FOR UPDATE SKIP LOCKED``
for claims, and transaction-scoped advisory locks for documents and queue keys (see :func:`_lock`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio.to_thread

from ..exceptions import ConfigurationError, UsageError
from ._base import Batch, CommitResult, Document, InboxKey, Job, ThreadedStoreLifecycle, TranscriptEntry
from ._rates import check_reservation, check_time
from ._schema import (
    JOB_COLUMNS,
    POSTGRES_MIGRATIONS,
    TRANSCRIPT_COLUMNS,
    dump_json,
    dump_message,
    load_json,
    lock_id,
    row_to_job,
    row_to_transcript,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresStore"]

T = TypeVar("T")

_MIGRATION_LOCK = lock_id("norbit-connectors", "schema migration")
# Serialization failures and deadlocks are resolved by running the transaction again.
_ATTEMPTS = 8
_HEADS = "SELECT DISTINCT ON (queue_key) id, not_before FROM norbit_jobs WHERE NOT dead ORDER BY queue_key, id"


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError('PostgresStore needs psycopg 3: pip install "norbit-connectors[postgres]"') from None
    return psycopg


class _Abort(Exception):
    """Roll the transaction back and return ``result``."""

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result


class _Pool:
    """A few connections shared by worker threads; broken ones are dropped and replaced on demand."""

    def __init__(self, psycopg: Any, dsn: str, min_size: int, max_size: int) -> None:
        self._psycopg = psycopg
        self._dsn = dsn
        self._max = max_size
        self._idle: list[psycopg.Connection[Any]] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()
        try:
            for _ in range(min_size):
                self._idle.append(self._connect())
                self._count += 1
        except BaseException:
            self.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn: psycopg.Connection[Any] = self._psycopg.connect(self._dsn, autocommit=True)
        except self._psycopg.OperationalError as exc:
            raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}".strip()) from None
        return conn

    def acquire(self) -> psycopg.Connection[Any]:
        with self._cond:
            while True:
                if self._closed:
                    raise UsageError("the PostgresStore is closed")
                if self._idle:
                    conn: psycopg.Connection[Any] = self._idle.pop()
                    return conn
                if self._count < self._max:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, conn: psycopg.Connection[Any]) -> None:
        with self._cond:
            if self._closed or conn.closed or conn.broken:
                self._count -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def _describe(psycopg: Any, dsn: str) -> str:
    # Only where the database is, never credentials.
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:
        return "PostgresStore(<invalid dsn>)"
    shown = ", ".join(f"{k}={params[k]!r}" for k in ("host", "port", "dbname") if params.get(k))
    return f"PostgresStore({shown})"


class PostgresStore(ThreadedStoreLifecycle):
    """The Store protocol on PostgreSQL (``pip install "norbit-connectors[postgres]"``).

    Tables are named ``norbit_*`` and live in the connection's current schema (choose another with
    ``?options=-csearch_path%3Dmyschema`` in the DSN). :meth:`open` creates or migrates them; several processes
    opening at once is safe. Works under asyncio and trio.
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._psycopg = _import_psycopg()
        if not isinstance(dsn, str) or not dsn.strip():
            raise ConfigurationError("PostgresStore needs a connection string, e.g. postgresql://user@host/db")
        try:
            self._psycopg.conninfo.conninfo_to_dict(dsn)
        except self._psycopg.ProgrammingError:
            raise ConfigurationError("PostgresStore: the connection string cannot be parsed") from None
        if not (isinstance(min_size, int) and isinstance(max_size, int) and 0 <= min_size <= max_size >= 1):
            raise ConfigurationError(
                f"PostgresStore needs 0 <= min_size <= max_size, max_size >= 1 (got {min_size}, {max_size})"
            )
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._lock = threading.Lock()
        self._pool: _Pool | None = None

    def __repr__(self) -> str:
        return _describe(self._psycopg, self._dsn)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def _open_sync(self) -> None:
        with self._lock:
            if self._pool is not None:
                return
            pool = _Pool(self._psycopg, self._dsn, self._min_size, self._max_size)
            try:
                conn = pool.acquire()
                try:
                    _migrate(conn)
                finally:
                    pool.release(conn)
            except BaseException:
                pool.close()
                raise
            self._pool = pool

    def _close_sync(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _call(self, fn: Callable[[psycopg.Connection[Any]], T], transaction: bool) -> T:
        pool = self._pool
        if pool is None:
            raise UsageError("the PostgresStore is not open: use `async with PostgresStore(dsn)` or `await open()`")
        retryable = (self._psycopg.errors.SerializationFailure, self._psycopg.errors.DeadlockDetected)
        conn = pool.acquire()
        try:
            for attempt in range(_ATTEMPTS):
                try:
                    if not transaction:
                        return fn(conn)
                    try:
                        with conn.transaction():
                            return fn(conn)
                    except _Abort as abort:
                        return cast(T, abort.result)
                except retryable:
                    if attempt == _ATTEMPTS - 1:
                        raise
                except UnicodeEncodeError:
                    raise UsageError("text given to PostgresStore must be valid Unicode (no lone surrogates)") from None
                except self._psycopg.DataError as exc:
                    # e.g. a NUL character in a key: PostgreSQL text cannot hold it.
                    raise UsageError(f"PostgreSQL refused a value: {str(exc).strip()}") from None
            raise AssertionError("unreachable")
        finally:
            pool.release(conn)

    async def _run(self, fn: Callable[[psycopg.Connection[Any]], T], *, transaction: bool = False) -> T:
        return await anyio.to_thread.run_sync(self._call, fn, transaction)

    # -- writes -------------------------------------------------------------------------------------------

    async def commit(self, batch: Batch, *, now: float) -> CommitResult:
        if not batch:
            return CommitResult(ok=True)
        return await self._run(lambda conn: _commit(conn, batch, now), transaction=True)

    # -- reads --------------------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Document | None:
        def read(conn: psycopg.Connection[Any]) -> Document | None:
            row = conn.execute(
                "SELECT value, version FROM norbit_documents WHERE namespace = %s AND key = %s", (namespace, key)
            ).fetchone()
            return None if row is None else Document(value=load_json(row[0]), version=int(row[1]))

        return await self._run(read)

    async def scan(self, namespace: str, *, prefix: str = "") -> list[tuple[str, Document]]:
        def read(conn: psycopg.Connection[Any]) -> list[tuple[str, Document]]:
            end = _prefix_end(prefix)
            if end is None:
                rows = conn.execute(
                    "SELECT key, value, version FROM norbit_documents WHERE namespace = %s AND key >= %s ORDER BY key",
                    (namespace, prefix),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT key, value, version FROM norbit_documents WHERE namespace = %s AND key >= %s "
                    "AND key < %s ORDER BY key",
                    (namespace, prefix, end),
                ).fetchall()
            return [
                (key, Document(value=load_json(value), version=int(version)))
                for key, value, version in rows
                if key.startswith(prefix)
            ]

        return await self._run(read)

    async def transcript(self, conversation_id: str, *, after_seq: int = 0) -> list[TranscriptEntry]:
        def read(conn: psycopg.Connection[Any]) -> list[TranscriptEntry]:
            rows = conn.execute(
                f"SELECT {TRANSCRIPT_COLUMNS} FROM norbit_transcript WHERE conversation_id = %s AND seq > %s "
                "ORDER BY seq",
                (conversation_id, after_seq),
            ).fetchall()
            return [row_to_transcript(row) for row in rows]

        return await self._run(read)

    # -- jobs ---------------------------------------------------------------------------------------------

    async def claim_jobs(self, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
        if limit <= 0:
            return []

        def claim(conn: psycopg.Connection[Any]) -> list[Job]:
            # One statement (one round trip). Heads come from the statement's snapshot; the row lock then
            # re-checks each head's current row (a concurrent claim, retry, dead letter or finish drops it).
            # Heads only ever move to higher ids, so a stale head list can miss jobs but never hand one out
            # before an older job of its key.
            rows = conn.execute(
                "UPDATE norbit_jobs SET lease_owner = %(owner)s, lease_until = %(until)s, claims = claims + 1 "
                "WHERE id IN ("
                f"SELECT id FROM norbit_jobs WHERE id IN (SELECT id FROM ({_HEADS}) AS heads) "
                "AND NOT dead AND not_before <= %(now)s AND (lease_until IS NULL OR lease_until <= %(now)s) "
                f"ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) RETURNING {JOB_COLUMNS}",
                {"owner": owner, "until": now + lease_seconds, "now": now, "limit": limit},
            ).fetchall()
            return sorted((row_to_job(row) for row in rows), key=lambda job: job.id)

        return await self._run(claim)

    async def finish_job(self, job_id: int, owner: str, *, batch: Batch | None = None, now: float) -> bool:
        if not batch:
            return await self._update_held(
                "DELETE FROM norbit_jobs WHERE id = %s AND lease_owner = %s AND NOT dead", (job_id, owner)
            )

        return await self._with_held_job(
            job_id, owner, batch, now, lambda conn: conn.execute("DELETE FROM norbit_jobs WHERE id = %s", (job_id,))
        )

    async def _with_held_job(
        self, job_id: int, owner: str, batch: Batch, now: float, then: Callable[[psycopg.Connection[Any]], object]
    ) -> bool:
        """In one transaction: if ``owner`` holds the job, commit ``batch`` and run ``then``; False otherwise (and
        when the batch conflicts, with nothing written)."""

        def held(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT lease_owner FROM norbit_jobs WHERE id = %s AND NOT dead FOR UPDATE", (job_id,)
            ).fetchone()
            if row is None or row[0] != owner:
                return False
            try:
                _commit(conn, batch, now)
            except _Abort:
                raise _Abort(False) from None
            then(conn)
            return True

        return await self._run(held, transaction=True)

    async def retry_job(self, job_id: int, owner: str, *, not_before: float, error: str, now: float) -> bool:
        check_time("not_before", not_before)
        return await self._update_held(
            "UPDATE norbit_jobs SET attempts = attempts + 1, not_before = %s, last_error = %s, lease_owner = NULL, "
            "lease_until = NULL WHERE id = %s AND lease_owner = %s AND NOT dead",
            (not_before, error, job_id, owner),
        )

    async def extend_lease(self, job_id: int, owner: str, *, until: float) -> bool:
        return await self._update_held(
            "UPDATE norbit_jobs SET lease_until = %s WHERE id = %s AND lease_owner = %s AND NOT dead",
            (until, job_id, owner),
        )

    async def dead_letter_job(
        self, job_id: int, owner: str, *, reason: str, now: float, batch: Batch | None = None
    ) -> bool:
        park = (
            "UPDATE norbit_jobs SET attempts = attempts + 1, last_error = %s, dead = TRUE, not_before = %s, "
            "lease_owner = NULL, lease_until = NULL WHERE id = %s AND lease_owner = %s AND NOT dead"
        )
        if not batch:
            return await self._update_held(park, (reason, now, job_id, owner))

        return await self._with_held_job(
            job_id, owner, batch, now, lambda conn: conn.execute(park, (reason, now, job_id, owner))
        )

    async def _update_held(self, sql: str, params: Sequence[Any]) -> bool:
        return await self._run(lambda conn: conn.execute(sql, params).rowcount == 1)

    async def dead_letters(self) -> list[Job]:
        def read(conn: psycopg.Connection[Any]) -> list[Job]:
            rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM norbit_jobs WHERE dead ORDER BY id").fetchall()
            return [row_to_job(row) for row in rows]

        return await self._run(read)

    async def requeue_dead_letter(self, job_id: int, *, now: float) -> bool:
        def requeue(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                "SELECT queue_key FROM norbit_jobs WHERE id = %s AND dead FOR UPDATE", (job_id,)
            ).fetchone()
            if row is None:
                return False
            _lock(conn, [lock_id("queue", row[0])])
            # A fresh id puts the job behind everything already pending for its queue key.
            conn.execute(
                "INSERT INTO norbit_jobs (queue_key, connector, kind, payload, attempts, not_before, created_at, "
                "last_error, dead, claims) SELECT queue_key, connector, kind, payload, attempts, %s, %s, last_error, "
                "FALSE, claims "
                "FROM norbit_jobs WHERE id = %s",
                (now, now, job_id),
            )
            conn.execute("DELETE FROM norbit_jobs WHERE id = %s", (job_id,))
            return True

        return await self._run(requeue, transaction=True)

    async def pending_jobs(self) -> int:
        def read(conn: psycopg.Connection[Any]) -> int:
            row = conn.execute("SELECT COUNT(*) FROM norbit_jobs WHERE NOT dead").fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    async def next_job_time(self) -> float | None:
        def read(conn: psycopg.Connection[Any]) -> float | None:
            row = conn.execute(f"SELECT MIN(not_before) FROM ({_HEADS}) AS heads").fetchone()
            return None if row is None or row[0] is None else float(row[0])

        return await self._run(read)

    async def prune(self, *, inbox_before: float) -> int:
        # Finished jobs are deleted when they finish, so only the inbox has anything to forget.
        def prune(conn: psycopg.Connection[Any]) -> int:
            removed = conn.execute("DELETE FROM norbit_inbox WHERE accepted_at < %s", (inbox_before,)).rowcount
            return int(removed) + int(
                conn.execute("DELETE FROM norbit_rate_cells WHERE at < %s", (inbox_before,)).rowcount
            )

        return await self._run(prune)

    # -- rate cells ---------------------------------------------------------------------------------------

    async def reserve_rate(self, key: str, *, now: float, cost: float, not_before: float = 0.0) -> float:
        check_reservation(key, now, cost, not_before)
        earliest, cost = float(max(now, not_before)), float(cost)

        def reserve(conn: psycopg.Connection[Any]) -> float:
            # One statement, one round trip: the row lock makes read and update one step for every process.
            row = conn.execute(
                "INSERT INTO norbit_rate_cells (key, at) VALUES (%(key)s, %(earliest)s + %(cost)s) "
                "ON CONFLICT (key) DO UPDATE SET at = GREATEST(norbit_rate_cells.at, %(earliest)s) + %(cost)s "
                "RETURNING at",
                {"key": key, "earliest": earliest, "cost": cost},
            ).fetchone()
            assert row is not None
            return float(row[0])

        return await self._run(reserve) - cost


def _prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no such bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # skip the surrogates, which cannot be stored
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _lock(conn: psycopg.Connection[Any], ids: Sequence[int]) -> None:
    # Transaction-scoped advisory locks, always taken in ascending order so two transactions cannot deadlock.
    for lid in sorted(set(ids)):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lid,))


def _commit(conn: psycopg.Connection[Any], batch: Batch, now: float) -> CommitResult:
    """Check and apply ``batch`` inside the caller's transaction; raises _Abort with the failed result.

    Locks are taken class by class (documents, transcript heads, inbox keys, queue keys), each in a fixed order,
    so concurrent commits queue up instead of deadlocking.
    """
    if batch.puts:
        _lock(conn, [lock_id("doc", p.namespace, p.key) for p in batch.puts])
        checked = [p for p in batch.puts if p.expected_version is not None]
        if checked:
            rows = conn.execute(
                "SELECT d.namespace, d.key, d.version FROM norbit_documents d "
                "JOIN unnest(%s::text[], %s::text[]) AS k(namespace, key) "
                "ON d.namespace = k.namespace AND d.key = k.key",
                ([p.namespace for p in checked], [p.key for p in checked]),
            ).fetchall()
            have = {(ns, key): int(version) for ns, key, version in rows}
            for put in checked:
                if have.get((put.namespace, put.key), 0) != put.expected_version:
                    raise _Abort(CommitResult(ok=False, conflict=(put.namespace, put.key)))
    if batch.inbox:
        distinct = sorted({(k.source, k.event_id) for k in batch.inbox})
        inserted = {
            (source, event_id)
            for source, event_id in conn.execute(
                "INSERT INTO norbit_inbox (source, event_id, accepted_at) "
                "SELECT s, e, %s FROM unnest(%s::text[], %s::text[]) AS k(s, e) "
                "ON CONFLICT DO NOTHING RETURNING source, event_id",
                (now, [s for s, _ in distinct], [e for _, e in distinct]),
            ).fetchall()
        }
        seen: set[InboxKey] = set()
        for key in batch.inbox:
            if key in seen or (key.source, key.event_id) not in inserted:
                raise _Abort(CommitResult(ok=False, duplicate=key))
            seen.add(key)
    versions: list[int] = []
    for put in batch.puts:
        if put.delete:
            conn.execute("DELETE FROM norbit_documents WHERE namespace = %s AND key = %s", (put.namespace, put.key))
            versions.append(0)
            continue
        row = conn.execute(
            "INSERT INTO norbit_documents (namespace, key, value, version) VALUES (%s, %s, %s, 1) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = EXCLUDED.value, "
            "version = norbit_documents.version + 1 RETURNING version",
            (put.namespace, put.key, dump_json(put.value)),
        ).fetchone()
        assert row is not None
        versions.append(int(row[0]))
    seqs = _append_transcript(conn, batch.transcript) if batch.transcript else []
    job_ids: list[int] = []
    if batch.jobs:
        # Jobs of one queue key get their ids in commit order: a head never hides an older, uncommitted job.
        _lock(conn, [lock_id("queue", j.queue_key) for j in batch.jobs])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO norbit_jobs (queue_key, connector, kind, payload, not_before, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                [(j.queue_key, j.connector, j.kind, dump_json(dict(j.payload)), j.not_before, now) for j in batch.jobs],
                returning=True,
            )
            while True:
                job_row = cur.fetchone()
                assert job_row is not None
                job_ids.append(int(job_row[0]))
                if not cur.nextset():
                    break
    return CommitResult(ok=True, versions=tuple(versions), seqs=tuple(seqs), job_ids=tuple(job_ids))


def _append_transcript(conn: psycopg.Connection[Any], entries: Sequence[TranscriptEntry]) -> list[int]:
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.conversation_id] = counts.get(entry.conversation_id, 0) + 1
    next_seq: dict[str, int] = {}
    for cid in sorted(counts):
        # The heads row is locked until commit, so appends to one conversation take turns.
        row = conn.execute(
            "INSERT INTO norbit_transcript_heads (conversation_id, last_seq) VALUES (%s, %s) "
            "ON CONFLICT (conversation_id) DO UPDATE SET last_seq = norbit_transcript_heads.last_seq + "
            "EXCLUDED.last_seq RETURNING last_seq",
            (cid, counts[cid]),
        ).fetchone()
        assert row is not None
        next_seq[cid] = int(row[0]) - counts[cid] + 1
    seqs: list[int] = []
    rows: list[tuple[Any, ...]] = []
    for entry in entries:
        seq = next_seq[entry.conversation_id]
        next_seq[entry.conversation_id] = seq + 1
        seqs.append(seq)
        rows.append((entry.conversation_id, seq, entry.role, dump_message(entry.message), entry.agent_id, entry.at))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO norbit_transcript (conversation_id, seq, role, message, agent_id, at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )
    return seqs


def _migrate(conn: psycopg.Connection[Any]) -> None:
    latest = len(POSTGRES_MIGRATIONS)
    with conn.transaction():
        # Several processes may open at once: the first migrates, the others wait and then find nothing to do.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS norbit_schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM norbit_schema_version").fetchone()
        version = 0 if row is None or row[0] is None else int(row[0])
        if version > latest:
            raise ConfigurationError(
                f"the database schema is version {version}, newer than this library knows ({latest}): "
                "upgrade norbit-connectors"
            )
        if version == latest:
            return
        for step in POSTGRES_MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute("DELETE FROM norbit_schema_version")
        conn.execute("INSERT INTO norbit_schema_version (version) VALUES (%s)", (latest,))
