"""Routing through the hub: assignment, queue, manual claims, takeover, office hours, state shared by hubs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from norbit_connectors import Agent, AlreadyClaimed, Assignment, Conversation, Department, Message, UsageError, User
from norbit_connectors._events import AssignmentChanged
from norbit_connectors.hub import Hub
from norbit_connectors.routing import OfficeHours, Routing
from norbit_connectors.store import MemoryStore, SQLiteStore

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio

AGENTS = [
    Agent(id="ann", name="Ann", department_ids=frozenset({"sales"})),
    Agent(id="bob", name="Bob"),
    Agent(id="root", name="Root", is_admin=True),
]
DEPARTMENTS = [Department(id="sales", name="Sales")]


def conv(n: int, **kw: object) -> Conversation:
    return Conversation(id=f"c{n}", user=User(id=f"u{n}", name=f"User {n}"), **kw)  # type: ignore[arg-type]


class Recorder:
    def __init__(self) -> None:
        self.assignments: list[Assignment] = []
        self.offline: list[str] = []

    async def on_assigned(self, assignment: Assignment) -> None:
        self.assignments.append(assignment)

    async def on_offline(self, conversation: Conversation) -> None:
        self.offline.append(conversation.id)


def make_hub(routing: Routing, rec: Recorder, **kw: object) -> tuple[Hub, RecordingConnector]:
    connector = RecordingConnector()
    hub = Hub(
        store=kw.pop("store", None) or MemoryStore(),  # type: ignore[arg-type]
        connectors=[connector],
        agents=AGENTS,
        departments=DEPARTMENTS,
        routing=routing,
        on_assigned=rec.on_assigned,
        on_offline=rec.on_offline,
        **kw,  # type: ignore[arg-type]
    )
    return hub, connector


async def test_auto_assignment_queue_and_release() -> None:
    rec = Recorder()
    hub, connector = make_hub(Routing(mode="auto", max_concurrent=1, response_minutes=4), rec)
    async with hub:
        await hub.set_agent_online("ann", True)
        await hub.set_agent_online("bob", True)
        for n in range(1, 5):
            await hub.customer_message(conv(n, department_id="sales"), Message(id="m", text="hi"))
        await hub.wait_idle()
        first = [await hub.assignment(f"c{n}") for n in range(1, 5)]
        assert sorted(a.agent_id for a in first[:2] if a) == ["ann", "bob"]
        assert [(a.queue_position, a.wait_minutes) for a in first[2:] if a] == [(1, 4), (2, 8)]
        state = await hub.conversation("c1")
        assert state is not None and state.conversation.agent_id == first[0].agent_id  # type: ignore[union-attr]
        await hub.archive("c1")
        await hub.wait_idle()
        after = await hub.assignment("c3")
        moved = await hub.assignment("c4")
    assert after is not None and after.agent_id == first[0].agent_id  # type: ignore[union-attr]
    assert moved is not None and moved.queue_position == 1 and moved.wait_minutes == 4
    events = [(a.conversation_id, a.event) for a in rec.assignments]
    assert ("c3", "queued") in events and ("c4", "queue_moved") in events and ("c3", "assigned") in events
    changed = [e for e in connector.events if isinstance(e, AssignmentChanged)]
    assert {e.conversation.id for e in changed} >= {"c1", "c2", "c3"}
    assert all(a.agent_id != "root" for a in rec.assignments)  # admins are never auto-assigned


async def test_manual_claims_first_wins() -> None:
    rec = Recorder()
    hub, _ = make_hub(Routing(mode="manual"), rec)
    async with hub:
        await hub.customer_message(conv(1), Message(id="m", text="hi"))
        await hub.wait_idle()
        assert (await hub.assignment("c1")).agent_id is None  # type: ignore[union-attr]
        won = await hub.claim("c1", "bob")
        with pytest.raises(AlreadyClaimed) as info:
            await hub.claim("c1", "ann")
        assert info.value.agent_id == "bob"
        with pytest.raises(UsageError):
            await hub.claim("c1", "nobody")
        await hub.wait_idle()
    assert won.agent_id == "bob"
    assert ("c1", "claimed") in [(a.conversation_id, a.event) for a in rec.assignments]


async def test_routing_starts_at_takeover() -> None:
    rec = Recorder()
    hub, _ = make_hub(Routing(mode="auto"), rec)
    c = conv(1, bot_active=True)
    async with hub:
        await hub.set_agent_online("bob", True)
        await hub.customer_message(c, Message(id="m1", text="hi"))
        await hub.wait_idle()
        assert await hub.assignment("c1") is None
        await hub.start_human_takeover(c)
        await hub.wait_idle()
        assignment = await hub.assignment("c1")
    assert assignment is not None and assignment.agent_id == "bob"


async def test_offline_message_at_most_once_per_user_per_hour() -> None:
    rec = Recorder()
    now = [datetime(2026, 11, 28, 22, 0, tzinfo=UTC).timestamp()]  # a Saturday night: closed
    hours = OfficeHours.weekdays("09:00", "17:00", timezone="Europe/Berlin")
    hub, _ = make_hub(Routing(mode="auto", office_hours=hours), rec, clock=lambda: now[0])
    async with hub:
        await hub.customer_message(conv(1), Message(id="m1", text="anyone?"))
        await hub.customer_message(conv(1), Message(id="m2", text="hello?"))
        await hub.wait_idle()
        now[0] += 3601
        await hub.customer_message(conv(1), Message(id="m3", text="still there?"))
        await hub.wait_idle()
    assert rec.offline == ["c1", "c1"]


async def test_two_hubs_on_one_store_agree(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    rec = Recorder()
    routing = Routing(mode="auto", max_concurrent=1)
    hub_a, _ = make_hub(routing, rec, store=SQLiteStore(path))
    hub_b, _ = make_hub(routing, rec, store=SQLiteStore(path))
    async with hub_a, hub_b:
        await hub_a.set_agent_online("bob", True)
        await hub_a.customer_message(conv(1), Message(id="m", text="hi"))
        await hub_b.customer_message(conv(2), Message(id="m", text="hi"))
        await hub_a.wait_idle()
        await hub_b.wait_idle()
        seen_by_b = [await hub_b.assignment(f"c{n}") for n in (1, 2)]
        seen_by_a = [await hub_a.assignment(f"c{n}") for n in (1, 2)]
    assert seen_by_a == seen_by_b
    assert sorted((a.agent_id or "", a.queue_position or 0) for a in seen_by_a if a) == [("", 1), ("bob", 0)]


async def test_routing_calls_need_routing() -> None:
    async with Hub() as hub:
        with pytest.raises(UsageError, match="routing"):
            await hub.set_agent_online("ann", True)
