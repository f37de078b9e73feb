"""SQLiteStore: the Store protocol in one SQLite file, shareable by several processes."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
from attrs import evolve

from ..exceptions import ConfigurationError, UsageError
from ._base import Batch, CommitResult, Document, InboxKey, Job, ThreadedStoreLifecycle, TranscriptEntry
from ._rates import check_reservation, check_time
from ._schema import (
    JOB_COLUMNS,
    SQLITE_MIGRATIONS,
    TRANSCRIPT_COLUMNS,
    dump_json,
    dump_message,
    load_json,
    row_to_job,
    row_to_transcript,
)

__all__ = ["SQLiteStore"]

log = logging.getLogger("norbit_connectors.store.sqlite")

T = TypeVar("T")

# How long a writer waits for another process holding the write lock before giving up.
_BUSY_TIMEOUT_MS = 30_000

# Checkpoints (copying the WAL back into the database, with an fsync) run in a background thread once this many
# commits have gone by or a second has passed, beside the writers, so commits rarely wait for one.
_CHECKPOINT_EVERY_COMMITS = 500
_CHECKPOINT_EVERY_SECONDS = 1.0
_CHECKPOINT_ROUNDS = 5
_CHECKPOINT_LEFT_PAGES = 256
# A checkpoint running beside a steady writer never quite catches up, and only a complete one lets the next write
# start the log over. So SQLite's own automatic checkpoint stays on, on the writing connection, at 64 MB (pages of
# 4 KB): by then the background rounds have copied nearly everything, and it has only the rest and a sync to do.
# Wherever writes pause, a complete background round lets the log start over long before.
_AUTOCHECKPOINT_PAGES = 16_384

# After this many accepting commits in a row found no other to share their transaction with, only one in
# _PROBE_EVERY waits a turn of the event loop for company.
_ALONE_BEFORE_SKIPPING = 8
_PROBE_EVERY = 128

# A live job is the head of its queue key when no older live job shares the key: one index probe per row, so
# scans in id (or not_before) order stop as soon as they have found enough heads.
_IS_HEAD = "NOT EXISTS (SELECT 1 FROM jobs AS p WHERE p.queue_key = j.queue_key AND p.dead = 0 AND p.id < j.id)"


class _Abort(Exception):
    """Roll the transaction back and return ``result``."""

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # BEGIN IMMEDIATE takes the write lock up front, so a transaction never fails half way on a lock upgrade.
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except _Abort as abort:
        conn.execute("ROLLBACK")
        return cast(T, abort.result)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _check(conn: sqlite3.Connection, batch: Batch) -> CommitResult | None:
    for put in batch.puts:
        if put.expected_version is None:
            continue
        row = conn.execute(
            "SELECT version FROM documents WHERE namespace = ? AND key = ?", (put.namespace, put.key)
        ).fetchone()
        have = 0 if row is None else int(row[0])
        if have != put.expected_version:
            return CommitResult(ok=False, conflict=(put.namespace, put.key))
    seen: set[InboxKey] = set()
    for key in batch.inbox:
        if key in seen:
            return CommitResult(ok=False, duplicate=key)
        seen.add(key)
        row = conn.execute(
            "SELECT 1 FROM inbox WHERE source = ? AND event_id = ?", (key.source, key.event_id)
        ).fetchone()
        if row is not None:
            return CommitResult(ok=False, duplicate=key)
    return None


def _apply(conn: sqlite3.Connection, batch: Batch, now: float, *, inbox_done: bool = False) -> CommitResult:
    versions: list[int] = []
    for put in batch.puts:
        if put.delete:
            conn.execute("DELETE FROM documents WHERE namespace = ? AND key = ?", (put.namespace, put.key))
            versions.append(0)
            continue
        row = conn.execute(
            "INSERT INTO documents (namespace, key, value, version) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = version + 1 "
            "RETURNING version",
            (put.namespace, put.key, dump_json(put.value)),
        ).fetchone()
        versions.append(int(row[0]))
    seqs: list[int] = []
    if batch.transcript:
        last: dict[str, int] = {}
        rows: list[tuple[Any, ...]] = []
        for entry in batch.transcript:
            cid = entry.conversation_id
            if cid not in last:
                found = conn.execute("SELECT MAX(seq) FROM transcript WHERE conversation_id = ?", (cid,)).fetchone()
                last[cid] = int(found[0] or 0)
            last[cid] += 1
            seqs.append(last[cid])
            rows.append((cid, last[cid], entry.role, dump_message(entry.message), entry.agent_id, entry.at))
        conn.executemany(
            "INSERT INTO transcript (conversation_id, seq, role, message, agent_id, at) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    if batch.inbox and not inbox_done:
        conn.executemany(
            "INSERT INTO inbox (source, event_id, accepted_at) VALUES (?, ?, ?)",
            [(k.source, k.event_id, now) for k in batch.inbox],
        )
    job_ids: tuple[int, ...] = ()
    if len(batch.jobs) == 1:
        job = batch.jobs[0]
        cursor = conn.execute(
            "INSERT INTO jobs (queue_key, connector, kind, payload, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job.queue_key, job.connector, job.kind, dump_json(dict(job.payload)), job.not_before, now),
        )
        job_ids = (int(cursor.lastrowid or 0),)
    elif batch.jobs:
        conn.executemany(
            "INSERT INTO jobs (queue_key, connector, kind, payload, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(j.queue_key, j.connector, j.kind, dump_json(dict(j.payload)), j.not_before, now) for j in batch.jobs],
        )
        # AUTOINCREMENT inside one write transaction hands out consecutive ids.
        last_id = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        job_ids = tuple(range(last_id - len(batch.jobs) + 1, last_id + 1))
    return CommitResult(ok=True, versions=tuple(versions), seqs=tuple(seqs), job_ids=job_ids)


def _checked_apply(conn: sqlite3.Connection, batch: Batch, now: float) -> CommitResult:
    """Check ``batch`` and apply it, or write nothing and return why not."""
    if len(batch.inbox) == 1 and all(put.expected_version is None for put in batch.puts):
        # The common inbound case (one event, its jobs): the inbox insert is the check and the first write.
        key = batch.inbox[0]
        inserted = conn.execute(
            "INSERT INTO inbox (source, event_id, accepted_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (key.source, key.event_id, now),
        ).rowcount
        if inserted != 1:
            return CommitResult(ok=False, duplicate=key)
        return _apply(conn, batch, now, inbox_done=True)
    failed = _check(conn, batch)
    return failed if failed is not None else _apply(conn, batch, now)


def _commit(conn: sqlite3.Connection, batch: Batch, now: float) -> CommitResult:
    result = _checked_apply(conn, batch, now)
    if not result.ok:
        raise _Abort(result)
    return result


def _commit_group(conn: sqlite3.Connection, group: Sequence[_Pending]) -> list[CommitResult]:
    # One transaction for many batches, each checked against the effects of those before it: the same outcome
    # as committing them one after another, for one journal write.
    if len(group) <= _MAX_ROWS_PER_INSERT and all(_is_inbound(pending.batch) for pending in group):
        return _commit_inbound_group(conn, group)
    return [_checked_apply(conn, pending.batch, pending.now) for pending in group]


# Rows per multi-row INSERT: well below SQLite's limit of 32,766 bound parameters at 6 per row.
_MAX_ROWS_PER_INSERT = 1_000


def _is_inbound(batch: Batch) -> bool:
    """One event accepted with its jobs: what webhooks commit."""
    return len(batch.inbox) == 1 and not batch.puts and not batch.transcript


def _commit_inbound_group(conn: sqlite3.Connection, group: Sequence[_Pending]) -> list[CommitResult]:
    """Inbound batches in one statement per table: the inbox insert tells which events are new (an event
    id seen before, or earlier in the group, makes its batch a duplicate that writes nothing)."""
    first: dict[InboxKey, int] = {}
    for i, pending in enumerate(group):
        first.setdefault(pending.batch.inbox[0], i)
    candidates = sorted(first.values())
    rows = [(group[i].batch.inbox[0].source, group[i].batch.inbox[0].event_id, group[i].now) for i in candidates]
    inserted = {
        (source, event_id)
        for source, event_id in conn.execute(
            "INSERT INTO inbox (source, event_id, accepted_at) VALUES "
            + ", ".join(["(?, ?, ?)"] * len(rows))
            + " ON CONFLICT DO NOTHING RETURNING source, event_id",
            [value for row in rows for value in row],
        ).fetchall()
    }
    accepted = [i for i in candidates if (group[i].batch.inbox[0].source, group[i].batch.inbox[0].event_id) in inserted]
    job_rows = [
        (job.queue_key, job.connector, job.kind, dump_json(dict(job.payload)), job.not_before, group[i].now)
        for i in accepted
        for job in group[i].batch.jobs
    ]
    last_id = 0
    if job_rows:
        conn.execute(
            "INSERT INTO jobs (queue_key, connector, kind, payload, not_before, created_at) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(job_rows)),
            [value for row in job_rows for value in row],
        )
        # AUTOINCREMENT hands the rows of one statement consecutive ids, in order.
        last_id = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    next_id = last_id - len(job_rows) + 1
    results: list[CommitResult] = []
    accepted_set = set(accepted)
    for i, pending in enumerate(group):
        if i not in accepted_set:
            results.append(CommitResult(ok=False, duplicate=pending.batch.inbox[0]))
            continue
        count = len(pending.batch.jobs)
        results.append(CommitResult(ok=True, job_ids=tuple(range(next_id, next_id + count))))
        next_id += count
    return results


class _Groups(threading.local):
    """The group commit in progress in one thread's event loop."""

    def __init__(self) -> None:
        self.pending: list[_Pending] = []
        self.written: anyio.Event | None = None
        self.flushing = False
        # How many accepting commits in a row found no other to share their transaction with.
        self.alone = 0


class _Pending:
    """A batch waiting for the next group commit."""

    __slots__ = ("batch", "error", "now", "result", "settled")

    def __init__(self, batch: Batch, now: float) -> None:
        self.batch = batch
        self.now = now
        self.settled = False
        self.result: CommitResult | None = None
        self.error: BaseException | None = None

    def settle(self, result: CommitResult | None = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.settled = True

    def outcome(self) -> CommitResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Checkpointer:
    """Copies the write-ahead log back into the database from a daemon thread, on a connection of its own, when
    asked or once a second: beside the store's writes, so that copying and syncing happen while commits go on."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"norbit-sqlite-checkpoint {path}", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait(_CHECKPOINT_EVERY_SECONDS)
                if self._stop.is_set():
                    return
                self._wake.clear()
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                    # PASSIVE never waits for readers or writers. Rounds go on while commits keep adding more
                    # than a few pages, so that little is left for the writer's own checkpoint.
                    for _ in range(_CHECKPOINT_ROUNDS):
                        _, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        if logged - copied <= _CHECKPOINT_LEFT_PAGES:
                            break
                except sqlite3.Error as exc:
                    log.debug("background checkpoint of %r skipped: %s", self._path, exc)
        finally:
            if conn is not None:
                conn.close()


class SQLiteStore(ThreadedStoreLifecycle):
    """The Store protocol on a SQLite file (WAL mode).

    Several processes may open the same file: writes take SQLite's write lock (waiting up to 30 s for it), and
    every claim, finish and commit is one transaction. The schema is created or migrated by :meth:`open`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            self._path = os.fspath(path)
        except TypeError:
            raise ConfigurationError(f"SQLiteStore needs a file path, not {type(path).__name__}") from None
        if not isinstance(self._path, str) or not self._path:
            raise ConfigurationError("SQLiteStore needs a non-empty file path")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._since_checkpoint = 0
        # Group commit: batches handed to commit() while another task is about to write join its transaction.
        # Per thread, so that event loops in several threads may share the store: each groups its own commits.
        self._groups = _Groups()
        #: How many transactions carried more than one batch (for tests and diagnostics).
        self._group_commits = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    @property
    def path(self) -> str:
        return self._path

    # -- lifecycle ----------------------------------------------------------------------------------------

    def _open_sync(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            try:
                conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise ConfigurationError(f"cannot open SQLite database {self._path!r}: {exc}") from exc
            try:
                conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                _prepare(conn)
                conn.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
                # From here on a busy database answers at once: inline statements fall back to a worker
                # thread, and the thread waits with back-off (_call), so the event loop never blocks on a lock.
                conn.execute("PRAGMA busy_timeout = 0")
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise ConfigurationError(f"{self._path!r} is not a usable SQLite database: {exc}") from exc
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            self._since_checkpoint = 0
            self._checkpointer = _Checkpointer(self._path)

    def _close_sync(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()  # outside the lock: a checkpoint in progress needs it to finish
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _wrote(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint >= _CHECKPOINT_EVERY_COMMITS and self._checkpointer is not None:
            self._since_checkpoint = 0
            self._checkpointer.request()

    def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        # In a worker thread: wait out another process's write lock with back-off, up to the busy timeout,
        # releasing our own lock in between so inline statements can go on.
        deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
        delay = 0.001
        while True:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise UsageError(
                        "the SQLiteStore is not open: use `async with SQLiteStore(path)` or `await open()`"
                    )
                try:
                    if not write:
                        return fn(conn)
                    result = _write(conn, fn)
                    self._wrote()
                    return result
                except UnicodeEncodeError:
                    raise UsageError("text given to SQLiteStore must be valid Unicode (no lone surrogates)") from None
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise
            time.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 0.05)

    def _try_inline(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> tuple[bool, T | None]:
        # A hop to a worker thread costs far more than a small SQLite statement. When nothing else in this
        # process uses the connection, run right here; busy_timeout is 0, so if another process holds the
        # database's write lock the statement fails at once and the work goes to a thread instead.
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            conn = self._conn
            if conn is None:
                raise UsageError("the SQLiteStore is not open: use `async with SQLiteStore(path)` or `await open()`")
            if not write:
                return True, fn(conn)
            result = _write(conn, fn)
            self._wrote()
            return True, result
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                return False, None
            raise
        except UnicodeEncodeError:
            raise UsageError("text given to SQLiteStore must be valid Unicode (no lone surrogates)") from None
        finally:
            self._lock.release()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        done, result = self._try_inline(fn, write=False)
        if done:
            return cast(T, result)
        return await anyio.to_thread.run_sync(lambda: self._call(fn, write=False))

    async def _run_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        done, result = self._try_inline(fn, write=True)
        if done:
            return cast(T, result)
        return await anyio.to_thread.run_sync(lambda: self._call(fn, write=True))

    # -- writes -------------------------------------------------------------------------------------------

    async def commit(self, batch: Batch, *, now: float) -> CommitResult:
        if not batch:
            return CommitResult(ok=True)
        pending = _Pending(batch, now)
        state = self._groups
        state.pending.append(pending)
        if state.flushing:
            # Another task writes it; one event wakes every batch of the same group. Cancelling this wait does
            # not take the batch back, as with a worker thread's call: it is committed all the same.
            if state.written is None:
                state.written = anyio.Event()
            await state.written.wait()
            return pending.outcome()
        state.flushing = True
        try:
            # Batches accepting outside input (webhook events, host calls: they carry inbox keys) tend to come
            # in bursts: one turn of the event loop lets every task about to commit add its batch to this
            # transaction. While they come one at a time, only one in _PROBE_EVERY still looks for company, so
            # that other tasks (the hub's workers) seldom run in the middle of an acknowledgement. Batches
            # arriving while a transaction is written in a worker thread go in the next one. Nothing from here
            # on can be cancelled, so no batch handed over is left unwritten.
            if batch.inbox:
                if state.alone < _ALONE_BEFORE_SKIPPING or state.alone % _PROBE_EVERY == 0:
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                company = sum(1 for waiting in state.pending if waiting.batch.inbox) > 1
                state.alone = 0 if company else state.alone + 1
            while state.pending:
                group, state.pending = state.pending, []
                written, state.written = state.written, None
                try:
                    await self._flush(group)
                except BaseException as exc:
                    # Interrupted (KeyboardInterrupt and the like): nobody may wait for ever.
                    for waiting in (*group, *state.pending):
                        if not waiting.settled:
                            waiting.settle(error=exc)
                    state.pending = []
                    for event in (written, state.written):
                        if event is not None:
                            event.set()
                    state.written = None
                    raise
                if written is not None:
                    written.set()
        finally:
            state.flushing = False
        return pending.outcome()

    async def _flush(self, group: list[_Pending]) -> None:
        if len(group) == 1:
            await self._commit_alone(group[0])
            return
        self._group_commits += 1
        try:
            results = await self._run_write(lambda conn: _commit_group(conn, group))
        except Exception:
            # One batch failed to apply: commit each on its own, so the error reaches only its own caller.
            for pending in group:
                await self._commit_alone(pending)
            return
        for pending, result in zip(group, results, strict=True):
            pending.settle(result)

    async def _commit_alone(self, pending: _Pending) -> None:
        try:
            result = await self._run_write(lambda conn: _commit(conn, pending.batch, pending.now))
        except Exception as exc:
            pending.settle(error=exc)
        else:
            pending.settle(result)

    # -- reads --------------------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Document | None:
        def read(conn: sqlite3.Connection) -> Document | None:
            row = conn.execute(
                "SELECT value, version FROM documents WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            return None if row is None else Document(value=load_json(row[0]), version=int(row[1]))

        return await self._run(read)

    async def scan(self, namespace: str, *, prefix: str = "") -> list[tuple[str, Document]]:
        def read(conn: sqlite3.Connection) -> list[tuple[str, Document]]:
            # Keys with the prefix sort contiguously from the prefix itself (BINARY collation = code point order).
            cursor = conn.execute(
                "SELECT key, value, version FROM documents WHERE namespace = ? AND key >= ? ORDER BY key",
                (namespace, prefix),
            )
            found: list[tuple[str, Document]] = []
            for key, value, version in cursor:
                if not key.startswith(prefix):
                    break
                found.append((key, Document(value=load_json(value), version=int(version))))
            cursor.close()
            return found

        return await self._run(read)

    async def transcript(self, conversation_id: str, *, after_seq: int = 0) -> list[TranscriptEntry]:
        def read(conn: sqlite3.Connection) -> list[TranscriptEntry]:
            rows = conn.execute(
                f"SELECT {TRANSCRIPT_COLUMNS} FROM transcript WHERE conversation_id = ? AND seq > ? ORDER BY seq",
                (conversation_id, after_seq),
            ).fetchall()
            return [row_to_transcript(row) for row in rows]

        return await self._run(read)

    # -- jobs ---------------------------------------------------------------------------------------------

    async def claim_jobs(self, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
        if limit <= 0:
            return []

        def claim(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs AS j WHERE j.dead = 0 AND j.not_before <= ? "
                f"AND (j.lease_until IS NULL OR j.lease_until <= ?) AND {_IS_HEAD} ORDER BY j.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            if rows:
                until = now + lease_seconds
                conn.executemany(
                    "UPDATE jobs SET lease_owner = ?, lease_until = ?, claims = claims + 1 WHERE id = ?",
                    [(owner, until, row[0]) for row in rows],
                )
            return [evolve(row_to_job(row), claims=int(row[10]) + 1) for row in rows]

        return await self._run_write(claim)

    async def finish_job(self, job_id: int, owner: str, *, batch: Batch | None = None, now: float) -> bool:
        return await self._run_write(
            _with_held_job(job_id, owner, batch, now, "DELETE FROM jobs WHERE id = ?", (job_id,))
        )

    async def retry_job(self, job_id: int, owner: str, *, not_before: float, error: str, now: float) -> bool:
        check_time("not_before", not_before)
        return await self._update_held(
            "UPDATE jobs SET attempts = attempts + 1, not_before = ?, last_error = ?, lease_owner = NULL, "
            "lease_until = NULL WHERE id = ? AND lease_owner = ? AND dead = 0",
            (not_before, error, job_id, owner),
        )

    async def extend_lease(self, job_id: int, owner: str, *, until: float) -> bool:
        return await self._update_held(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND dead = 0", (until, job_id, owner)
        )

    async def dead_letter_job(
        self, job_id: int, owner: str, *, reason: str, now: float, batch: Batch | None = None
    ) -> bool:
        park = (
            "UPDATE jobs SET attempts = attempts + 1, last_error = ?, dead = 1, not_before = ?, "
            "lease_owner = NULL, lease_until = NULL WHERE id = ?"
        )
        return await self._run_write(_with_held_job(job_id, owner, batch, now, park, (reason, now, job_id)))

    async def _update_held(self, sql: str, params: Sequence[Any]) -> bool:
        return await self._run_write(lambda conn: conn.execute(sql, params).rowcount == 1)

    async def dead_letters(self) -> list[Job]:
        def read(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE dead = 1 ORDER BY id").fetchall()
            return [row_to_job(row) for row in rows]

        return await self._run(read)

    async def requeue_dead_letter(self, job_id: int, *, now: float) -> bool:
        def requeue(conn: sqlite3.Connection) -> bool:
            # A fresh id puts the job behind everything already pending for its queue key.
            inserted = conn.execute(
                "INSERT INTO jobs (queue_key, connector, kind, payload, attempts, not_before, created_at, "
                "last_error, dead, claims) SELECT queue_key, connector, kind, payload, attempts, ?, ?, last_error, 0, "
                "claims "
                "FROM jobs WHERE id = ? AND dead = 1",
                (now, now, job_id),
            ).rowcount
            if inserted != 1:
                return False
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return True

        return await self._run_write(requeue)

    async def pending_jobs(self) -> int:
        return await self._run(lambda conn: int(conn.execute("SELECT COUNT(*) FROM jobs WHERE dead = 0").fetchone()[0]))

    async def next_job_time(self) -> float | None:
        def read(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                f"SELECT j.not_before FROM jobs AS j WHERE j.dead = 0 AND {_IS_HEAD} ORDER BY j.not_before LIMIT 1"
            ).fetchone()
            return None if row is None else float(row[0])

        return await self._run(read)

    async def prune(self, *, inbox_before: float) -> int:
        # Finished jobs are deleted when they finish, so only the inbox has anything to forget. This scans the
        # whole inbox (no index slows every accepted event down for it), so it always runs in a worker thread.
        def prune(conn: sqlite3.Connection) -> int:
            removed = conn.execute("DELETE FROM inbox WHERE accepted_at < ?", (inbox_before,)).rowcount
            return removed + conn.execute("DELETE FROM rate_cells WHERE at < ?", (inbox_before,)).rowcount

        return await anyio.to_thread.run_sync(lambda: self._call(prune, write=True))

    # -- rate cells ---------------------------------------------------------------------------------------

    async def reserve_rate(self, key: str, *, now: float, cost: float, not_before: float = 0.0) -> float:
        check_reservation(key, now, cost, not_before)
        at = await self._run_write(lambda conn: _reserve(conn, key, max(now, not_before), cost))
        return at - cost


def _reserve(conn: sqlite3.Connection, key: str, earliest: float, cost: float) -> float:
    # One statement: the write lock makes the read and the update of the cell one step for every process.
    row = conn.execute(
        "INSERT INTO rate_cells (key, at) VALUES (?1, ?2 + ?3) "
        "ON CONFLICT (key) DO UPDATE SET at = max(at, ?2) + ?3 RETURNING at",
        (key, float(earliest), float(cost)),
    ).fetchone()
    return float(row[0])


def _with_held_job(
    job_id: int, owner: str, batch: Batch | None, now: float, sql: str, params: Sequence[Any]
) -> Callable[[sqlite3.Connection], bool]:
    """A write that, if ``owner`` holds the job and ``batch`` (when given) does not conflict, applies the batch and
    runs ``sql``; it answers False, writing nothing, otherwise."""

    def write(conn: sqlite3.Connection) -> bool:
        if not _holds(conn, job_id, owner):
            return False
        if batch and _check(conn, batch) is not None:
            return False
        if batch:
            _apply(conn, batch, now)
        conn.execute(sql, params)
        return True

    return write


def _holds(conn: sqlite3.Connection, job_id: int, owner: str) -> bool:
    row = conn.execute("SELECT lease_owner FROM jobs WHERE id = ? AND dead = 0", (job_id,)).fetchone()
    return row is not None and row[0] == owner


def _prepare(conn: sqlite3.Connection) -> None:
    """Switch to WAL and migrate, waiting out other processes doing the same on a new file.

    SQLite answers "database is locked" at once, without calling the busy handler, where waiting could
    deadlock (two connections both upgrading their locks, as when several processes open a new file together):
    such a step is tried again, for as long as the busy timeout.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process crash; only a power loss may drop the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            _migrate(conn)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(delay / 2, delay))
        delay = min(delay * 2, 0.5)


def _migrate(conn: sqlite3.Connection) -> None:
    latest = len(SQLITE_MIGRATIONS)
    # Cheap check first: an up to date database needs no write lock, so many processes can open at once.
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) == latest:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > latest:
            raise ConfigurationError(
                f"the database schema is version {version}, newer than this library knows ({latest}): "
                "upgrade norbit-connectors"
            )
        for step in SQLITE_MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {latest}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(path: str | os.PathLike[str]) -> int:
    """The schema version recorded in the SQLite file at ``path`` (0 for a new file)."""
    conn = sqlite3.connect(os.fspath(path))
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
