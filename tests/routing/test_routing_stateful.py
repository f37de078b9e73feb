"""Random walks over the routing engine, checked against a plain model after every step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from norbit_connectors import Agent, AlreadyClaimed, Assignment, UsageError
from norbit_connectors.routing import Routing, RoutingEngine

AGENT_IDS = [f"a{i}" for i in range(4)]
DEPARTMENTS = ["d0", "d1"]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

agent_strategy = st.builds(
    lambda agent_id, departments, admin: Agent(
        id=agent_id, name=agent_id, department_ids=frozenset(departments), is_admin=admin
    ),
    st.sampled_from(AGENT_IDS),
    st.frozensets(st.sampled_from(DEPARTMENTS), max_size=2),
    st.sampled_from([False, False, False, True]),
)
agents_strategy = st.lists(agent_strategy, max_size=4, unique_by=lambda a: a.id)
routing_strategy = st.builds(
    Routing,
    mode=st.sampled_from(["auto", "auto", "auto", "manual", "off"]),
    max_concurrent=st.one_of(st.none(), st.integers(1, 3)),
    response_minutes=st.integers(0, 5),
)
department_strategy = st.sampled_from([None, *DEPARTMENTS, "d3"])


class RoutingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.minutes = 0
        self.counter = 0
        # Model: conversation -> [department, agent, state]; queues per department, next first.
        self.conversations: dict[str, list[object]] = {}
        self.queues: dict[str | None, list[str]] = {}
        self.online: set[str] = set()
        self.last: dict[str, tuple[float, int]] = {}
        self.next_id = 0

    @initialize(routing=routing_strategy, agents=agents_strategy, online=st.sets(st.sampled_from(AGENT_IDS)))
    def start(self, routing: Routing, agents: list[Agent], online: set[str]) -> None:
        self.routing = routing
        self.agents = {a.id: a for a in agents}
        self.engine = RoutingEngine(routing, agents)
        for agent_id in sorted(online & self.agents.keys()):
            assert self.engine.set_online(agent_id, True, now=START) == []
            self.online.add(agent_id)

    # -- helpers ---------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        self.minutes += 1
        return START + timedelta(minutes=self.minutes)

    def loads(self) -> dict[str, int]:
        loads: dict[str, int] = {}
        for _department, agent_id, state in self.conversations.values():
            if state == "active":
                assert isinstance(agent_id, str)
                loads[agent_id] = loads.get(agent_id, 0) + 1
        return loads

    def eligible(self, department: str | None) -> list[str]:
        return [
            a.id
            for a in self.agents.values()
            if not a.is_admin and (department is None or not a.department_ids or department in a.department_ids)
        ]

    def expected_choice(self, department: str | None, at: float) -> str | None:
        eligible = self.eligible(department)
        pool = [a for a in eligible if a in self.online] or eligible
        if not pool:
            return None
        loads = self.loads()
        best = min(pool, key=lambda a: (loads.get(a, 0), *self.last.get(a, (float("-inf"), -1)), a))
        cap = self.routing.max_concurrent
        return None if cap is not None and loads.get(best, 0) >= cap else best

    def apply(self, events: list[Assignment], *, auto: bool, at: float) -> None:
        """Update the model from the events, checking each against it."""
        auto_agents: set[str] = set()
        for event in events:
            record = self.conversations[event.conversation_id]
            assert event.department_id == record[0]
            queue = self.queues.setdefault(record[0], [])
            if event.event in ("assigned", "claimed"):
                assert event.agent_id is not None
                assert event.queue_position is None
                if record[2] == "queued":
                    if event.event == "assigned":
                        # The queue is FIFO: only its head is ever pulled.
                        assert queue[0] == event.conversation_id
                        auto_agents.add(event.agent_id)
                    queue.remove(event.conversation_id)
                elif auto and event.event == "assigned":
                    auto_agents.add(event.agent_id)
                record[1], record[2] = event.agent_id, "active"
                self.counter += 1
                self.last[event.agent_id] = (at, self.counter)
            elif event.event == "queued":
                assert record[2] != "queued"
                queue.append(event.conversation_id)
                record[1], record[2] = None, "queued"
                assert event.queue_position == len(queue)
            elif event.event == "queue_moved":
                assert record[2] == "queued"
                assert event.queue_position == queue.index(event.conversation_id) + 1
            else:
                assert event.event == "unassigned"
                record[1], record[2] = None, "unassigned"
            if event.queue_position is not None:
                assert event.wait_minutes == event.queue_position * self.routing.response_minutes
        loads = self.loads()
        for agent_id in auto_agents:
            assert self.routing.mode == "auto"
            assert not self.agents[agent_id].is_admin
            cap = self.routing.max_concurrent
            assert cap is None or loads[agent_id] <= cap

    # -- rules -----------------------------------------------------------------------------------------------

    @rule(department=department_strategy, preassign=st.none() | st.none() | st.sampled_from(AGENT_IDS))
    def add(self, department: str | None, preassign: str | None) -> None:
        conversation_id = f"c{self.next_id}"
        self.next_id += 1
        now = self.now()
        expected = self.expected_choice(department, now.timestamp())
        waiting = bool(self.queues.get(department))
        events = self.engine.add_conversation(conversation_id, department_id=department, agent_id=preassign, now=now)
        self.conversations[conversation_id] = [department, None, "unassigned"]
        if preassign is not None:
            assert [(e.agent_id, e.event) for e in events] == [(preassign, "assigned")]
        elif self.routing.mode == "auto":
            assert len(events) == 1
            if waiting or expected is None:
                assert events[0].event == "queued"
            else:
                assert (events[0].event, events[0].agent_id) == ("assigned", expected)
        elif self.routing.mode == "manual":
            assert [e.event for e in events] == ["unassigned"]
        else:
            assert events == []
        self.apply(events, auto=preassign is None, at=now.timestamp())

    @precondition(lambda self: self.conversations)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        conversation_id = data.draw(st.sampled_from(sorted(self.conversations)))
        record = self.conversations[conversation_id]
        now = self.now()
        events = self.engine.release(conversation_id, now=now)
        if record[2] == "queued":
            self.queues[record[0]].remove(conversation_id)  # type: ignore[index]
        record[2] = "archived"
        self.apply(events, auto=True, at=now.timestamp())

    @precondition(lambda self: any(r[2] == "archived" for r in self.conversations.values()))
    @rule(data=st.data())
    def reopen(self, data: st.DataObject) -> None:
        archived = sorted(c for c, r in self.conversations.items() if r[2] == "archived")
        conversation_id = data.draw(st.sampled_from(archived))
        previous = self.conversations[conversation_id][1]
        now = self.now()
        events = self.engine.reopen(conversation_id, now=now)
        self.conversations[conversation_id][2] = "unassigned"
        kept = previous is not None and (
            self.routing.mode != "auto" or (previous in self.online and previous in self.agents)
        )
        if kept:
            assert [e.agent_id for e in events] == [previous]
        self.apply(events, auto=not kept, at=now.timestamp())

    @rule(data=st.data(), online=st.booleans())
    def set_online(self, data: st.DataObject, online: bool) -> None:
        # Mostly known agents; now and then an id the engine has never heard of.
        known = sorted(self.agents)
        pick_known = bool(known) and data.draw(st.integers(0, 4)) > 0
        agent_id = data.draw(st.sampled_from(known if pick_known else AGENT_IDS))
        now = self.now()
        if agent_id not in self.agents:
            with pytest.raises(UsageError):
                self.engine.set_online(agent_id, online, now=now)
            return
        events = self.engine.set_online(agent_id, online, now=now)
        if online:
            self.online.add(agent_id)
        else:
            self.online.discard(agent_id)
        self.apply(events, auto=True, at=now.timestamp())

    @precondition(lambda self: self.conversations)
    @rule(data=st.data(), agent_id=st.sampled_from(AGENT_IDS))
    def claim(self, data: st.DataObject, agent_id: str) -> None:
        conversation_id = data.draw(st.sampled_from(sorted(self.conversations)))
        _department, holder, state = self.conversations[conversation_id]
        now = self.now()
        if state == "archived":
            with pytest.raises(UsageError):
                self.engine.claim(conversation_id, agent_id, now=now)
        elif holder is not None and holder != agent_id:
            with pytest.raises(AlreadyClaimed) as info:
                self.engine.claim(conversation_id, agent_id, now=now)
            assert info.value.agent_id == holder
        elif holder == agent_id:
            assert self.engine.claim(conversation_id, agent_id, now=now) == []
        else:
            events = self.engine.claim(conversation_id, agent_id, now=now)
            assert (events[0].event, events[0].agent_id) == ("claimed", agent_id)
            self.apply(events, auto=False, at=now.timestamp())

    @rule(agent=agent_strategy, remove=st.booleans())
    def set_agents(self, agent: Agent, remove: bool) -> None:
        """One agent joins, changes (departments, admin) or leaves."""
        now = self.now()
        changed = dict(self.agents)
        if remove:
            changed.pop(agent.id, None)
        else:
            changed[agent.id] = agent
        agents = list(changed.values())
        self.agents = changed
        self.online &= self.agents.keys()
        events = self.engine.set_agents(agents, now=now)
        self.apply(events, auto=True, at=now.timestamp())

    @rule()
    def restore(self) -> None:
        data = self.engine.snapshot()
        text = json.dumps(data, sort_keys=True)
        restored = RoutingEngine.from_snapshot(self.routing, list(self.agents.values()), json.loads(text))
        assert restored.snapshot() == data
        self.engine = restored

    # -- invariants ------------------------------------------------------------------------------------------

    @invariant()
    def engine_agrees_with_model(self) -> None:
        if not hasattr(self, "engine"):
            return
        for conversation_id, (department, agent_id, state) in self.conversations.items():
            assignment = self.engine.assignment(conversation_id)
            assert assignment is not None
            assert assignment.department_id == department
            if state == "queued":
                position = self.queues[department].index(conversation_id) + 1
                assert (assignment.agent_id, assignment.queue_position) == (None, position)
            elif state == "unassigned":
                assert (assignment.agent_id, assignment.event) == (None, "unassigned")
            elif state == "active":
                assert assignment.agent_id == agent_id
                assert assignment.queue_position is None
        for department, queue in self.queues.items():
            assert self.engine.queue(department) == queue
        loads = self.loads()
        for agent_id in {*AGENT_IDS, *loads}:
            assert self.engine.load(agent_id) == loads.get(agent_id, 0)

    @invariant()
    def nothing_waits_while_someone_could_take_it(self) -> None:
        if not hasattr(self, "engine"):
            return
        if self.routing.mode != "auto":
            assert not any(self.queues.values())
            return
        loads = self.loads()
        cap = self.routing.max_concurrent
        for department, queue in self.queues.items():
            if not queue:
                continue
            eligible = self.eligible(department)
            pool = [a for a in eligible if a in self.online] or eligible
            assert all(cap is not None and loads.get(a, 0) >= cap for a in pool), (department, queue, pool)

    @invariant()
    def snapshot_is_json(self) -> None:
        if hasattr(self, "engine"):
            data = self.engine.snapshot()
            assert json.loads(json.dumps(data)) == data


RoutingMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
TestRoutingMachine = RoutingMachine.TestCase
