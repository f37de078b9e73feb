"""Stores: where the hub keeps conversations, transcripts, links, the inbox and the job queue.

``MemoryStore()`` for tests, ``SQLiteStore(path)`` (the embedded default), ``PostgresStore(dsn)`` to share one
database between several processes.
"""

from typing import TYPE_CHECKING, Any

from ._base import (
    Batch,
    CommitResult,
    Document,
    InboxKey,
    Job,
    NewJob,
    Put,
    RateCells,
    Store,
    StoreLifecycle,
    ThreadedStoreLifecycle,
    TranscriptEntry,
)
from ._memory import MemoryStore
from ._sqlite import SQLiteStore

if TYPE_CHECKING:
    from ._postgres import PostgresStore

__all__ = [
    "Batch",
    "CommitResult",
    "Document",
    "InboxKey",
    "Job",
    "MemoryStore",
    "NewJob",
    "PostgresStore",
    "Put",
    "RateCells",
    "SQLiteStore",
    "Store",
    "StoreLifecycle",
    "ThreadedStoreLifecycle",
    "TranscriptEntry",
]


def __getattr__(name: str) -> Any:
    # PostgresStore is imported on first use so that psycopg stays an optional dependency.
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
