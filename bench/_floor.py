"""Floors: the benchmarked work done with the standard library alone, to read the targets against.

Neither is a product. Each does only the work its benchmark names, with nothing a library adds around it: no
typed events, no checks beyond what the work needs, no hub, no cancellation safety, no retries, asyncio or
threads only. What they measure is how much room the work itself leaves for a target on the machine at hand:

- :class:`InboundFloor` acknowledges signed Events API message events: the signature (HMAC-SHA256, constant-time
  compare, five-minute window), ``json.loads``, the few fields the job needs, and one SQLite transaction per turn
  of the event loop for every event accepted in it (an inbox row and a job row each, in SQLiteStore's own schema
  and settings).
- :func:`outbound_floor` is a durable outbox: one SQLite transaction per message to record it, a pool of threads
  posting with ``WebClient.chat_postMessage``, and one transaction per message to delete it once posted.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from slack_sdk import WebClient

from norbit_connectors._connector import HttpResponse
from norbit_connectors.store import SQLiteStore

from ._emulator_process import EmulatorProcess

__all__ = ["InboundFloor", "outbound_floor"]

_OK = HttpResponse.text(200, "")
_UNAUTHORIZED = HttpResponse.text(401, "bad signature")
_BAD = HttpResponse.text(400, "malformed event")


async def _sqlite_connection(path: Path) -> sqlite3.Connection:
    """A connection to a new SQLiteStore database at ``path`` (schema created by the store itself)."""
    async with SQLiteStore(path):
        pass
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous = NORMAL")  # as SQLiteStore; WAL mode is kept in the file
    return conn


class InboundFloor:
    """The least an acknowledgement with a durable inbox can cost here: see the module's docstring.

    ``await InboundFloor.open(path, signing_secret)``, then ``await floor.handle(headers, body)`` from any number of
    asyncio tasks; :meth:`accepted` counts the jobs written.
    """

    def __init__(self, conn: sqlite3.Connection, signing_secret: str) -> None:
        self._conn = conn
        self._key = signing_secret.encode("utf-8")
        self._pending: list[tuple[str, str, str]] = []
        self._written: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, path: Path, signing_secret: str) -> InboundFloor:
        return cls(await _sqlite_connection(path), signing_secret)

    def close(self) -> None:
        self._conn.close()

    def accepted(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    async def handle(self, headers: Mapping[str, str], body: bytes) -> HttpResponse:
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return _UNAUTHORIZED
        expected = "v0=" + hmac.digest(self._key, b"v0:" + timestamp.encode() + b":" + body, "sha256").hex()
        if not hmac.compare_digest(expected, signature):
            return _UNAUTHORIZED
        try:
            data = json.loads(body)
        except ValueError:
            return _BAD
        event = data.get("event") if isinstance(data, dict) else None
        event_id = data.get("event_id") if isinstance(data, dict) else None
        if not isinstance(event, dict) or not isinstance(event_id, str):
            return _BAD
        channel = event.get("channel")
        if event.get("type") != "message" or "bot_id" in event or "subtype" in event or not isinstance(channel, str):
            return _OK
        self._pending.append((event_id, f"slack:{channel}", json.dumps({"event": event, "event_id": event_id})))
        if self._written is not None:
            await self._written
            return _OK
        written = self._written = asyncio.get_running_loop().create_future()
        await asyncio.sleep(0)  # the requests of this turn of the event loop join the transaction
        group, self._pending, self._written = self._pending, [], None
        try:
            self._commit(group)
        except BaseException as exc:
            written.set_exception(exc)
            raise
        written.set_result(None)
        return _OK

    def _commit(self, group: Sequence[tuple[str, str, str]]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            new = {
                event_id
                for (event_id,) in conn.execute(
                    "INSERT INTO inbox (source, event_id, accepted_at) VALUES "
                    + ", ".join(["('slack', ?, 0)"] * len(group))
                    + " ON CONFLICT DO NOTHING RETURNING event_id",
                    [event_id for event_id, _, _ in group],
                ).fetchall()
            }
            # The first of the group's requests for each new event id (Slack may retry while one is in flight).
            firsts: dict[str, tuple[str, str]] = {}
            for event_id, queue_key, payload in group:
                if event_id in new:
                    firsts.setdefault(event_id, (queue_key, payload))
            rows = list(firsts.values())
            if rows:
                conn.execute(
                    "INSERT INTO jobs (queue_key, connector, kind, payload, created_at) VALUES "
                    + ", ".join(["(?, 'slack', 'in.event', ?, 0)"] * len(rows)),
                    [value for row in rows for value in row],
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def outbound_floor(
    emu: EmulatorProcess, path: Path, channels: Sequence[str], n_messages: int, *, workers: int = 8
) -> dict[str, Any]:
    """Post ``n_messages`` round-robin over ``channels`` through the floor's durable outbox (see the module's
    docstring) with ``workers`` threads; the rate and the process's CPU time per message, like the other rows."""
    conn = anyio.run(_sqlite_connection, path)
    conn.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, text TEXT NOT NULL)")
    lock = threading.Lock()
    work: queue.SimpleQueue[tuple[int, str, str] | None] = queue.SimpleQueue()
    failures: list[BaseException] = []

    def write(sql: str, args: tuple[Any, ...]) -> int:
        with lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row_id = conn.execute(sql, args).lastrowid
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return int(row_id or 0)

    def worker() -> None:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url)
        while (item := work.get()) is not None:
            row_id, channel, text = item
            try:
                client.chat_postMessage(channel=channel, text=text, username="Customer")
                write("DELETE FROM outbox WHERE id = ?", (row_id,))
            except BaseException as exc:  # reported after the run; the message stays in the outbox
                failures.append(exc)

    threads = [threading.Thread(target=worker, name=f"outbound floor {i}") for i in range(workers)]
    before = emu.calls_to("chat.postMessage")
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for i in range(n_messages):
        channel, text = channels[i % len(channels)], f"floor message {i}"
        work.put((write("INSERT INTO outbox (channel, text) VALUES (?, ?)", (channel, text)), channel, text))
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    left = int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    conn.close()
    posted = emu.calls_to("chat.postMessage") - before
    if failures or left or posted != n_messages:
        raise RuntimeError(f"outbound floor: {posted} of {n_messages} posted, {left} left over, failures {failures!r}")
    return {"messages": n_messages, "messages_per_s": n_messages / elapsed, "cpu_ms_per_msg": cpu * 1e3 / n_messages}
