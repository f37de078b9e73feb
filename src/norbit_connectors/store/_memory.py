"""MemoryStore: the Store protocol in process memory, for tests and throwaway runs."""

from __future__ import annotations

import copy
import json
from collections import deque
from typing import Any

import anyio
import anyio.lowlevel
from attrs import evolve

from ._base import Batch, CommitResult, Document, InboxKey, Job, StoreLifecycle, TranscriptEntry
from ._rates import advance, check_reservation, check_time

__all__ = ["MemoryStore"]


def _json_copy(value: Any) -> Any:
    # Values must survive a round trip through JSON exactly as in the durable stores.
    return json.loads(json.dumps(value))


class MemoryStore(StoreLifecycle):
    """Keeps everything in dictionaries. Nothing survives the process; semantics match the durable stores.

    Each method does its work without awaiting anything after its one checkpoint, so it is atomic on the event
    loop without a lock (and tasks never queue behind one another).
    """

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], Document] = {}
        self._transcripts: dict[str, list[TranscriptEntry]] = {}
        self._inbox: dict[InboxKey, float] = {}
        self._jobs: dict[int, Job] = {}
        self._leases: dict[int, tuple[str, float]] = {}
        # Live (not dead) job ids per queue key, oldest first: the head of each is the only claimable one.
        self._queues: dict[str, deque[int]] = {}
        self._next_job_id = 1
        # Rate cells: key -> time (see RateCells), shared by every hub of this process that uses this store.
        self._rates: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(documents={len(self._docs)}, jobs={len(self._jobs)})"

    # -- writes -------------------------------------------------------------------------------------------

    def _check(self, batch: Batch) -> CommitResult | None:
        for put in batch.puts:
            current = self._docs.get((put.namespace, put.key))
            if put.expected_version is None:
                continue
            have = current.version if current is not None else 0
            if have != put.expected_version:
                return CommitResult(ok=False, conflict=(put.namespace, put.key))
        seen: set[InboxKey] = set()
        for key in batch.inbox:
            if key in self._inbox or key in seen:
                return CommitResult(ok=False, duplicate=key)
            seen.add(key)
        return None

    def _apply(self, batch: Batch, now: float) -> CommitResult:
        # Convert every value before changing anything: a value that is not JSON must fail the whole batch.
        values = [None if put.delete else _json_copy(put.value) for put in batch.puts]
        payloads = [_json_copy(dict(new.payload)) for new in batch.jobs]
        versions: list[int] = []
        for put, value in zip(batch.puts, values, strict=True):
            k = (put.namespace, put.key)
            if put.delete:
                self._docs.pop(k, None)
                versions.append(0)
                continue
            current = self._docs.get(k)
            version = (current.version if current is not None else 0) + 1
            self._docs[k] = Document(value=value, version=version)
            versions.append(version)
        seqs: list[int] = []
        for entry in batch.transcript:
            entries = self._transcripts.setdefault(entry.conversation_id, [])
            seq = len(entries) + 1
            entries.append(evolve(entry, seq=seq))
            seqs.append(seq)
        for key in batch.inbox:
            self._inbox[key] = now
        job_ids: list[int] = []
        for new, payload in zip(batch.jobs, payloads, strict=True):
            job_id = self._next_job_id
            self._next_job_id += 1
            self._jobs[job_id] = Job(
                id=job_id,
                queue_key=new.queue_key,
                connector=new.connector,
                kind=new.kind,
                payload=payload,
                not_before=new.not_before,
                created_at=now,
            )
            self._queues.setdefault(new.queue_key, deque()).append(job_id)
            job_ids.append(job_id)
        return CommitResult(ok=True, versions=tuple(versions), seqs=tuple(seqs), job_ids=tuple(job_ids))

    async def commit(self, batch: Batch, *, now: float) -> CommitResult:
        await anyio.lowlevel.checkpoint()
        failed = self._check(batch)
        if failed is not None:
            return failed
        return self._apply(batch, now)

    # -- reads --------------------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Document | None:
        doc = self._docs.get((namespace, key))
        return None if doc is None else Document(value=copy.deepcopy(doc.value), version=doc.version)

    async def scan(self, namespace: str, *, prefix: str = "") -> list[tuple[str, Document]]:
        found = [
            (k, Document(value=copy.deepcopy(d.value), version=d.version))
            for (ns, k), d in self._docs.items()
            if ns == namespace and k.startswith(prefix)
        ]
        return sorted(found, key=lambda item: item[0])

    async def transcript(self, conversation_id: str, *, after_seq: int = 0) -> list[TranscriptEntry]:
        return [e for e in self._transcripts.get(conversation_id, ()) if e.seq > after_seq]

    # -- jobs ---------------------------------------------------------------------------------------------

    def _heads(self) -> list[Job]:
        return sorted((self._jobs[queue[0]] for queue in self._queues.values()), key=lambda j: j.id)

    def _unqueue(self, job: Job) -> None:
        queue = self._queues[job.queue_key]
        queue.remove(job.id)  # the head, in practice: only heads are claimed
        if not queue:
            del self._queues[job.queue_key]

    def _holds(self, job_id: int, owner: str) -> bool:
        lease = self._leases.get(job_id)
        return job_id in self._jobs and lease is not None and lease[0] == owner

    async def claim_jobs(self, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
        await anyio.lowlevel.checkpoint()
        claimed: list[Job] = []
        for job in self._heads():
            if len(claimed) >= limit:
                break
            if job.not_before > now:
                continue
            lease = self._leases.get(job.id)
            if lease is not None and lease[1] > now:
                continue
            self._leases[job.id] = (owner, now + lease_seconds)
            job = self._jobs[job.id] = evolve(job, claims=job.claims + 1)
            claimed.append(job)
        return claimed

    async def finish_job(self, job_id: int, owner: str, *, batch: Batch | None = None, now: float) -> bool:
        await anyio.lowlevel.checkpoint()
        if not self._holds(job_id, owner):
            return False
        if batch:
            if self._check(batch) is not None:
                return False
            self._apply(batch, now)
        self._unqueue(self._jobs.pop(job_id))
        del self._leases[job_id]
        return True

    async def retry_job(self, job_id: int, owner: str, *, not_before: float, error: str, now: float) -> bool:
        check_time("not_before", not_before)
        await anyio.lowlevel.checkpoint()
        if not self._holds(job_id, owner):
            return False
        job = self._jobs[job_id]
        self._jobs[job_id] = evolve(job, attempts=job.attempts + 1, not_before=not_before, last_error=error)
        del self._leases[job_id]
        return True

    async def extend_lease(self, job_id: int, owner: str, *, until: float) -> bool:
        await anyio.lowlevel.checkpoint()
        if not self._holds(job_id, owner):
            return False
        self._leases[job_id] = (owner, until)
        return True

    async def dead_letter_job(
        self, job_id: int, owner: str, *, reason: str, now: float, batch: Batch | None = None
    ) -> bool:
        await anyio.lowlevel.checkpoint()
        if not self._holds(job_id, owner):
            return False
        if batch:
            if self._check(batch) is not None:
                return False
            self._apply(batch, now)
        job = self._jobs[job_id]
        self._jobs[job_id] = evolve(job, attempts=job.attempts + 1, last_error=reason, dead=True, not_before=now)
        self._unqueue(job)
        del self._leases[job_id]
        return True

    async def dead_letters(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.dead]

    async def requeue_dead_letter(self, job_id: int, *, now: float) -> bool:
        await anyio.lowlevel.checkpoint()
        job = self._jobs.get(job_id)
        if job is None or not job.dead:
            return False
        del self._jobs[job_id]
        new_id = self._next_job_id
        self._next_job_id += 1
        self._jobs[new_id] = evolve(job, id=new_id, dead=False, not_before=now, created_at=now)
        self._queues.setdefault(job.queue_key, deque()).append(new_id)
        return True

    async def pending_jobs(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def next_job_time(self) -> float | None:
        times = [j.not_before for j in self._heads()]
        return min(times) if times else None

    async def prune(self, *, inbox_before: float) -> int:
        await anyio.lowlevel.checkpoint()
        old = [k for k, at in self._inbox.items() if at < inbox_before]
        for k in old:
            del self._inbox[k]
        idle = [key for key, at in self._rates.items() if at < inbox_before]
        for key in idle:
            del self._rates[key]
        return len(old) + len(idle)

    # -- rate cells ---------------------------------------------------------------------------------------

    async def reserve_rate(self, key: str, *, now: float, cost: float, not_before: float = 0.0) -> float:
        check_reservation(key, now, cost, not_before)
        await anyio.lowlevel.checkpoint()
        start, self._rates[key] = advance(self._rates.get(key), now=now, cost=cost, not_before=not_before)
        return start
