"""Stores: where the hub keeps conversations, transcripts, links, the inbox and the job queue.

``MemoryStore()`` for tests, ``SQLiteStore(path)`` (the embedded default), ``PostgresStore(dsn)`` to share one
database between several processes.
"""

from ._base import Batch, CommitResult, Document, InboxKey, Job, NewJob, Put, Store, TranscriptEntry
from ._memory import MemoryStore
from ._sqlite import SQLiteStore

__all__ = [
    "Batch",
    "CommitResult",
    "Document",
    "InboxKey",
    "Job",
    "MemoryStore",
    "NewJob",
    "Put",
    "SQLiteStore",
    "Store",
    "TranscriptEntry",
]
