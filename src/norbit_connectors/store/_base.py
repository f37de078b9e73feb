"""The Store protocol: everything the hub keeps durably.

A store holds six kinds of records, all written through one atomic primitive, :meth:`Store.commit`:

- **Documents** (``namespace``, ``key``) -> JSON value with a version, for compare-and-swap updates: conversation
  state, links (conversation or user -> external channel and back), the message map (our message id <-> external
  id such as a Slack ts), routing state, caches.
- **The transcript**: per conversation, the messages in the order they were accepted.
- **The inbox**: (source, event id) pairs already accepted; a second insert of the same pair fails the commit.
  This is how Slack's retries and duplicate webhook deliveries are deduplicated, durably.
- **The job queue** (the outbox, and the inbound work): jobs ordered per ``queue_key``. Only the oldest unfinished
  job of a queue key can be claimed, so work on one conversation happens in order, while different keys run
  concurrently. Claims are leases: a worker that dies leaves its job to be claimed again once the lease expires.
  Dead letters are parked with their reason, do not block their queue, and can be requeued.
- **Rate cells** (optional, :class:`RateCells`): one time per key, advanced atomically, so that processes sharing
  the store pace an outside service together (the Slack connector's limiter).

Times are Unix seconds (float) passed in by the caller, never read from a clock here, so every store behaves the
same under test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, Self, runtime_checkable

import anyio.to_thread
from attrs import field, frozen

from .._models import Message

__all__ = [
    "Batch",
    "CommitResult",
    "Document",
    "InboxKey",
    "Job",
    "NewJob",
    "Put",
    "RateCells",
    "Store",
    "StoreLifecycle",
    "ThreadedStoreLifecycle",
    "TranscriptEntry",
]

JSON = Any
Role = Literal["customer", "agent", "bot", "system"]


@frozen(kw_only=True)
class Document:
    """A stored JSON value and its version (1 for the first write, +1 on every write)."""

    value: JSON
    version: int


@frozen(kw_only=True)
class Put:
    """Write ``value`` (or delete, when ``delete``) at (namespace, key).

    ``expected_version``: None writes unconditionally; 0 requires that nothing is stored there yet; N requires
    that the stored version is N. A mismatch fails the whole commit.
    """

    namespace: str
    key: str
    value: JSON = None
    expected_version: int | None = None
    delete: bool = False


@frozen(kw_only=True)
class TranscriptEntry:
    """One message of a conversation's transcript. ``seq`` is given by the store (1, 2, ... per conversation)."""

    conversation_id: str
    role: Role
    message: Message
    agent_id: str | None = None
    at: float = 0.0
    seq: int = 0


@frozen(kw_only=True)
class InboxKey:
    """An inbound event already accepted: ``source`` (e.g. "slack", "telegram") and its ``event_id``."""

    source: str
    event_id: str


@frozen(kw_only=True)
class NewJob:
    """Work to do: ``connector`` performs ``kind`` with ``payload``, after earlier jobs of the same ``queue_key``."""

    queue_key: str
    connector: str
    kind: str
    payload: Mapping[str, JSON] = field(factory=dict)
    not_before: float = 0.0


@frozen(kw_only=True)
class Job:
    """A job as stored. ``id`` grows with insertion order."""

    id: int
    queue_key: str
    connector: str
    kind: str
    payload: Mapping[str, JSON]
    attempts: int = 0
    not_before: float = 0.0
    created_at: float = 0.0
    last_error: str | None = None
    dead: bool = False
    #: How many times the job has been leased, the current lease included: 1 on a first run. More means an
    #: earlier run may have done part of the work (its lease ran out, or it was released or retried).
    claims: int = 0


@frozen(kw_only=True)
class Batch:
    """Writes applied together or not at all."""

    puts: Sequence[Put] = ()
    transcript: Sequence[TranscriptEntry] = ()
    inbox: Sequence[InboxKey] = ()
    jobs: Sequence[NewJob] = ()

    def __bool__(self) -> bool:
        return bool(self.puts or self.transcript or self.inbox or self.jobs)


@frozen(kw_only=True)
class CommitResult:
    """What :meth:`Store.commit` did.

    ``ok`` False means nothing was written: ``conflict`` names the (namespace, key) whose version did not match, or
    ``duplicate`` the inbox key already present. On success, ``versions`` are the new versions of the puts (in
    order; 0 for deletes), ``seqs`` the transcript sequence numbers, ``job_ids`` the new job ids.
    """

    ok: bool
    versions: tuple[int, ...] = ()
    seqs: tuple[int, ...] = ()
    job_ids: tuple[int, ...] = ()
    conflict: tuple[str, str] | None = None
    duplicate: InboxKey | None = None


@runtime_checkable
class Store(Protocol):
    """Durable state of a hub. Implementations: MemoryStore, SQLiteStore, PostgresStore.

    Every method is safe to call concurrently from several tasks, and (for SQLite and PostgreSQL) from several
    processes sharing the same database.
    """

    async def open(self) -> None:
        """Connect and migrate the schema. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def commit(self, batch: Batch, *, now: float) -> CommitResult:
        """Apply every write of ``batch`` atomically (see :class:`CommitResult`)."""

    async def get(self, namespace: str, key: str) -> Document | None:
        """The document at (namespace, key), or None."""

    async def scan(self, namespace: str, *, prefix: str = "") -> list[tuple[str, Document]]:
        """Every (key, document) of ``namespace`` whose key starts with ``prefix``, ordered by key."""

    async def transcript(self, conversation_id: str, *, after_seq: int = 0) -> list[TranscriptEntry]:
        """The transcript of a conversation, oldest first, from ``after_seq`` (exclusive)."""

    async def claim_jobs(self, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
        """Lease up to ``limit`` jobs to ``owner``: for each queue key, only its oldest job that is neither
        finished nor dead, if ``not_before <= now`` and it is not leased (or its lease expired). Oldest first."""

    async def finish_job(self, job_id: int, owner: str, *, batch: Batch | None = None, now: float) -> bool:
        """Mark the job done and apply ``batch`` in the same transaction. False (and nothing written) if
        ``owner`` no longer holds the lease, or the batch conflicts."""

    async def retry_job(self, job_id: int, owner: str, *, not_before: float, error: str, now: float) -> bool:
        """Release the job for another attempt at ``not_before``; ``attempts`` + 1, ``last_error`` kept.
        ``not_before`` must be finite (UsageError otherwise, and the job stays held): a time that never comes
        would block the job's queue for ever."""

    async def extend_lease(self, job_id: int, owner: str, *, until: float) -> bool:
        """Keep holding a job that takes long (waiting for a rate limit). False if the lease was lost."""

    async def dead_letter_job(
        self, job_id: int, owner: str, *, reason: str, now: float, batch: Batch | None = None
    ) -> bool:
        """Park the job with ``reason``: it no longer blocks its queue key. Its ``not_before`` becomes ``now``
        (when it was parked). ``batch`` is applied in the same transaction. False (and nothing written) if
        ``owner`` no longer holds the lease, or the batch conflicts."""

    async def dead_letters(self) -> list[Job]:
        """Every parked job, oldest first."""

    async def requeue_dead_letter(self, job_id: int, *, now: float) -> bool:
        """Put a parked job back in the queue (it runs after what is pending for its key). False if unknown."""

    async def pending_jobs(self) -> int:
        """How many jobs are neither finished nor dead (leased ones included)."""

    async def next_job_time(self) -> float | None:
        """The smallest ``not_before`` among claimable-when-due jobs, or None when nothing is pending."""

    async def prune(self, *, inbox_before: float) -> int:
        """Forget inbox keys accepted before ``inbox_before`` and finished jobs (and rate cells idle since before
        it, see :class:`RateCells`); returns how many rows went."""


@runtime_checkable
class RateCells(Protocol):
    """Rate cells: what lets processes sharing a store pace an outside service together. Optional: the stores
    of this package have them; with a store that has not, each process paces its own calls.

    A cell holds one time per ``key`` (a generic cell rate algorithm's theoretical arrival time: when the next
    call would go at the sustained rate). A caller reserves its place with :meth:`reserve_rate` and works out
    from the start it gets how long to wait.
    """

    async def reserve_rate(self, key: str, *, now: float, cost: float, not_before: float = 0.0) -> float:
        """Atomically: ``start = max(cell, now, not_before)``, then ``cell = start + cost``; returns ``start``.

        A key never reserved starts at ``max(now, not_before)``. ``cost`` (seconds, >= 0) is the reservation's
        share of the rate: ``n`` calls at one per ``interval`` cost ``n * interval``. ``cost=0`` with
        ``not_before`` holds the cell back (after a 429's Retry-After). Keys are at most 512 characters;
        ``now``, ``cost`` and ``not_before`` finite, else UsageError. :meth:`Store.prune` forgets cells whose
        time is before ``inbox_before`` (an idle cell and no cell behave the same)."""


class StoreLifecycle:
    """``async with store:`` opens and closes any store built on it."""

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ThreadedStoreLifecycle(StoreLifecycle):
    """For stores whose driver blocks: connecting and closing run in a worker thread."""

    def _open_sync(self) -> None:
        raise NotImplementedError

    def _close_sync(self) -> None:
        raise NotImplementedError

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._open_sync)

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._close_sync)
