"""What the SQL stores share: row (de)serialization and the versioned schemas.

Values and payloads are stored as JSON text (not ``jsonb``) so that key order and every float come back exactly
as :class:`MemoryStore` gives them. Messages go through :data:`norbit_connectors._models.converter`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from .._models import Message, converter
from ._base import Job, TranscriptEntry

__all__ = [
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "dump_json",
    "dump_message",
    "load_json",
    "load_message",
    "lock_id",
    "row_to_job",
    "row_to_transcript",
]

# Column order every job query selects, so rows can be turned into Job in one place.
JOB_COLUMNS = "id, queue_key, connector, kind, payload, attempts, not_before, created_at, last_error, dead, claims"
TRANSCRIPT_COLUMNS = "conversation_id, seq, role, message, agent_id, at"


def dump_json(value: Any) -> str:
    return json.dumps(value)


def load_json(text: str) -> Any:
    return json.loads(text)


def dump_message(message: Message) -> str:
    return json.dumps(converter.unstructure(message))


def load_message(text: str) -> Message:
    return converter.structure(json.loads(text), Message)


#: The payload key of a job whose stored payload could not be read back: the hub parks such a job.
UNDECODABLE = "__undecodable__"


def load_payload(text: Any) -> Any:
    try:
        payload = json.loads(text)
    except (TypeError, ValueError):
        return {UNDECODABLE: str(text)[:200]}
    return payload if isinstance(payload, dict) else {UNDECODABLE: str(text)[:200]}


def row_to_job(row: Sequence[Any]) -> Job:
    return Job(
        id=int(row[0]),
        queue_key=row[1],
        connector=row[2],
        kind=row[3],
        payload=load_payload(row[4]),
        attempts=int(row[5]),
        not_before=float(row[6]),
        created_at=float(row[7]),
        last_error=row[8],
        dead=bool(row[9]),
        claims=int(row[10]),
    )


def row_to_transcript(row: Sequence[Any]) -> TranscriptEntry:
    return TranscriptEntry(
        conversation_id=row[0],
        seq=int(row[1]),
        role=row[2],
        message=load_message(row[3]),
        agent_id=row[4],
        at=float(row[5]),
    )


def lock_id(kind: str, *parts: str) -> int:
    """A signed 64-bit advisory lock id for ``kind`` and ``parts`` (collisions only cost extra waiting)."""
    digest = hashlib.blake2b("\x00".join((kind, *parts)).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


# -- SQLite ------------------------------------------------------------------------------------------------
# Migration N (1-based) brings ``PRAGMA user_version`` from N-1 to N. Append only; never edit a released step.

SQLITE_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS documents (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            version INTEGER NOT NULL,
            PRIMARY KEY (namespace, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS transcript (
            conversation_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            message TEXT NOT NULL,
            agent_id TEXT,
            at REAL NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS inbox (
            source TEXT NOT NULL,
            event_id TEXT NOT NULL,
            accepted_at REAL NOT NULL,
            PRIMARY KEY (source, event_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS inbox_accepted_at ON inbox (accepted_at)",
        """CREATE TABLE IF NOT EXISTS jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue_key TEXT NOT NULL,
            connector TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            last_error TEXT,
            dead INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until REAL
        )""",
    ),
    (
        # The head of each queue key is its live job with the smallest id: this index finds it in one probe.
        "CREATE INDEX IF NOT EXISTS jobs_live_heads ON jobs (queue_key, id) WHERE dead = 0",
        "CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (id) WHERE dead = 1",
        # next_job_time walks live jobs by due time until it meets a head.
        "CREATE INDEX IF NOT EXISTS jobs_live_due ON jobs (not_before) WHERE dead = 0",
    ),
    (
        # Every accepted event paid for this index; only prune() used it, and a scan serves an occasional prune.
        "DROP INDEX IF EXISTS inbox_accepted_at",
    ),
    ("ALTER TABLE jobs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0",),
    # Rate cells (RateCells): processes sharing the file pace an outside service together.
    ("CREATE TABLE IF NOT EXISTS rate_cells (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID",),
)

# -- PostgreSQL --------------------------------------------------------------------------------------------
# Keys use the "C" collation so ORDER BY matches Python's code point order whatever the database locale.

POSTGRES_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS norbit_documents (
            namespace TEXT COLLATE "C" NOT NULL,
            key TEXT COLLATE "C" NOT NULL,
            value TEXT NOT NULL,
            version BIGINT NOT NULL,
            PRIMARY KEY (namespace, key)
        )""",
        """CREATE TABLE IF NOT EXISTS norbit_transcript (
            conversation_id TEXT COLLATE "C" NOT NULL,
            seq BIGINT NOT NULL,
            role TEXT NOT NULL,
            message TEXT NOT NULL,
            agent_id TEXT,
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        )""",
        # One row per conversation holding its last seq: the row lock serializes concurrent appends.
        """CREATE TABLE IF NOT EXISTS norbit_transcript_heads (
            conversation_id TEXT COLLATE "C" PRIMARY KEY,
            last_seq BIGINT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS norbit_inbox (
            source TEXT COLLATE "C" NOT NULL,
            event_id TEXT COLLATE "C" NOT NULL,
            accepted_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, event_id)
        )""",
        "CREATE INDEX IF NOT EXISTS norbit_inbox_accepted_at ON norbit_inbox (accepted_at)",
        """CREATE TABLE IF NOT EXISTS norbit_jobs (
            id BIGSERIAL PRIMARY KEY,
            queue_key TEXT COLLATE "C" NOT NULL,
            connector TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            last_error TEXT,
            dead BOOLEAN NOT NULL DEFAULT FALSE,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION
        )""",
        "CREATE INDEX IF NOT EXISTS norbit_jobs_live_heads ON norbit_jobs (queue_key, id) WHERE NOT dead",
        "CREATE INDEX IF NOT EXISTS norbit_jobs_dead ON norbit_jobs (id) WHERE dead",
    ),
    ("ALTER TABLE norbit_jobs ADD COLUMN IF NOT EXISTS claims INTEGER NOT NULL DEFAULT 0",),
    (
        """CREATE TABLE IF NOT EXISTS norbit_rate_cells (
            key TEXT COLLATE "C" PRIMARY KEY,
            at DOUBLE PRECISION NOT NULL
        )""",
    ),
)
