"""The hub's shortcuts on its hot path keep their guarantees: the conversation state it keeps in memory between
writes never wins over what another writer stored, and the jobs it claims ahead for its workers are neither
lost nor doubled, nor delivered out of order."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from norbit_connectors import Conversation, Message, User
from norbit_connectors._connector import Connector, HttpResponse
from norbit_connectors._events import CustomerMessage, HubEvent
from norbit_connectors.hub import Hub
from norbit_connectors.store import Batch, Job, MemoryStore, SQLiteStore

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio

USER = User(id="u1", name="Zoë Smith")


def conv(cid: str = "c1") -> Conversation:
    return Conversation(id=cid, user=USER)


async def test_a_reopen_by_another_hub_is_seen_by_the_next_message(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    # Both hubs take jobs from the shared queue, so both have the connector.
    recs = [RecordingConnector(), RecordingConnector()]
    async with (
        Hub(store=SQLiteStore(path), connectors=[recs[0]]) as first,
        Hub(store=SQLiteStore(path), connectors=[recs[1]]) as second,
    ):
        await first.customer_message(conv(), Message(id="m1", text="one"))
        await first.wait_idle()
        await second.wait_idle()
        # Another process archives the conversation behind the first hub's back.
        await second.archive("c1")
        await first.customer_message(conv(), Message(id="m2", text="two"))
        await first.wait_idle()
        await second.wait_idle()
        state = await first.conversation("c1")
        assert state is not None
        assert (state.status, state.epoch) == ("open", 1)
        assert not await first.dead_letters()
    messages = [e for rec in recs for e in rec.events if isinstance(e, CustomerMessage)]
    assert sorted((m.message.text, m.reopened) for m in messages) == [("one", False), ("two", True)]


async def test_an_archive_is_not_skipped_on_a_state_another_hub_changed(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    async with Hub(store=SQLiteStore(path)) as first, Hub(store=SQLiteStore(path)) as second:
        await first.customer_message(conv(), Message(id="m1", text="one"))
        await first.archive("c1")
        # The other hub reopens it; the first hub last wrote it archived.
        await second.customer_message(conv(), Message(id="m2", text="two"))
        await first.archive("c1")
        state = await second.conversation("c1")
        assert state is not None
        assert (state.status, state.epoch) == ("archived", 1)


async def test_two_hubs_writing_one_conversation_lose_no_message(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    async with Hub(store=SQLiteStore(path)) as first, Hub(store=SQLiteStore(path)) as second:

        async def write(hub: Hub, prefix: str) -> None:
            for i in range(30):
                await hub.customer_message(conv(), Message(id=f"{prefix}{i}", text=f"{prefix}{i}"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, first, "a")
            tg.start_soon(write, second, "b")
            tg.start_soon(write, first, "c")
        entries = await first.store.transcript("c1")
        texts = [e.message.text for e in entries]
        assert sorted(texts) == sorted(f"{p}{i}" for p in "abc" for i in range(30))
        for prefix in "abc":
            assert [t for t in texts if t[0] == prefix] == [f"{prefix}{i}" for i in range(30)]


class _Gate(Connector):
    """Holds every delivery until released, counting how many run at once."""

    name = "rec"
    role = "agent"

    def __init__(self, *, busy: int) -> None:
        self.release = anyio.Event()
        self.busy = anyio.Event()  # set once ``busy`` deliveries have started
        self._busy = busy
        self.started = 0
        self.running = 0
        self.most = 0
        self.delivered: list[str] = []

    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        if self.started >= self._busy:
            self.busy.set()
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        assert isinstance(event, CustomerMessage)
        self.delivered.append(event.message.text)
        return None

    async def _handle_http(self, headers: object, body: bytes, *, method: str, query: str) -> HttpResponse:
        return HttpResponse.text(200, "ok")


async def test_jobs_claimed_ahead_run_only_on_free_workers_in_order() -> None:
    gate = _Gate(busy=2)
    async with Hub(connectors=[gate], workers=2) as hub:
        for i in range(5):
            for c in range(6):
                await hub.customer_message(conv(f"c{c}"), Message(id=f"{c}-{i}", text=f"{c}-{i}"))
        await gate.busy.wait()
        gate.release.set()
        await hub.wait_idle()
    assert gate.most == 2
    assert sorted(gate.delivered) == sorted(f"{c}-{i}" for c in range(6) for i in range(5))
    for c in range(6):
        assert [t for t in gate.delivered if t.startswith(f"{c}-")] == [f"{c}-{i}" for i in range(5)]


async def test_jobs_held_when_the_hub_stops_go_back_to_the_queue_at_once() -> None:
    store = MemoryStore()
    gate = _Gate(busy=1)
    # A lease far longer than the test: a job the stopped hub kept leased would never be delivered.
    async with Hub(store=store, connectors=[gate], workers=1, lease_seconds=3600) as hub:
        for c in range(4):
            await hub.customer_message(conv(f"c{c}"), Message(id="m", text=f"c{c}"))
        await gate.busy.wait()
    assert gate.delivered == []
    rec = RecordingConnector()
    async with Hub(store=store, connectors=[rec], lease_seconds=3600) as hub:
        with anyio.fail_after(30):
            await hub.wait_idle()
    assert sorted(rec.texts()) == ["c0", "c1", "c2", "c3"]
