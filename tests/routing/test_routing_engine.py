from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from norbit_connectors import Agent, AlreadyClaimed, Assignment, UsageError
from norbit_connectors.routing import OfficeHours, Routing, RoutingEngine

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def agent(agent_id: str, *departments: str, admin: bool = False) -> Agent:
    return Agent(id=agent_id, name=agent_id.title(), department_ids=frozenset(departments), is_admin=admin)


def engine_with(*agents: Agent, online: tuple[str, ...] = (), **routing: object) -> RoutingEngine:
    engine = RoutingEngine(Routing(**routing), agents)  # type: ignore[arg-type]
    for agent_id in online:
        engine.set_online(agent_id, True, now=NOW)
    return engine


def assigned_to(events: list[Assignment]) -> list[tuple[str, str | None, str]]:
    return [(e.conversation_id, e.agent_id, e.event) for e in events]


# -- departments and eligibility ------------------------------------------------------------------------------


def test_agent_without_department_serves_every_department() -> None:
    engine = engine_with(agent("a"), online=("a",))
    events = engine.add_conversation("c1", department_id="sales", now=NOW)
    assert assigned_to(events) == [("c1", "a", "assigned")]
    assert events[0].department_id == "sales"


def test_department_agent_only_gets_its_departments() -> None:
    engine = engine_with(agent("s", "sales"), agent("b", "billing"), online=("s", "b"))
    assert engine.add_conversation("c1", department_id="billing", now=NOW)[0].agent_id == "b"
    assert engine.add_conversation("c2", department_id="sales", now=NOW)[0].agent_id == "s"


def test_conversation_without_department_may_go_to_any_agent() -> None:
    engine = engine_with(agent("s", "sales"), online=("s",))
    assert engine.add_conversation("c1", department_id=None, now=NOW)[0].agent_id == "s"


def test_unknown_department_waits_when_nobody_serves_it() -> None:
    engine = engine_with(agent("s", "sales"), online=("s",))
    events = engine.add_conversation("c1", department_id="legal", now=NOW)
    assert events == [
        Assignment(
            conversation_id="c1",
            agent_id=None,
            queue_position=1,
            wait_minutes=3,
            event="queued",
            department_id="legal",
        )
    ]
    # A new agent serving the department picks it up.
    events = engine.set_agents([agent("s", "sales"), agent("l", "legal")], now=NOW)
    assert assigned_to(events) == [("c1", "l", "assigned")]


def test_admins_are_never_auto_assigned() -> None:
    engine = engine_with(agent("boss", admin=True), agent("a"), online=("boss",))
    # Nobody but the admin is online: the conversation falls back to the offline non-admin.
    assert engine.add_conversation("c1", department_id=None, now=NOW)[0].agent_id == "a"
    only_admin = engine_with(agent("boss", admin=True), online=("boss",))
    assert only_admin.add_conversation("c1", department_id=None, now=NOW)[0].event == "queued"


# -- automatic assignment -----------------------------------------------------------------------------------


def test_least_loaded_online_agent_wins() -> None:
    engine = engine_with(agent("a"), agent("b"), agent("c"), online=("a", "b"))
    engine.add_conversation("x", department_id=None, agent_id="a", now=NOW)
    events = engine.add_conversation("c1", department_id=None, now=later(1))
    assert events[0].agent_id == "b"  # c is offline, a has one already


def test_ties_go_to_longest_since_last_assignment_then_id() -> None:
    engine = engine_with(agent("a"), agent("b"), agent("c"), online=("a", "b", "c"))
    first = [engine.add_conversation(f"c{i}", department_id=None, now=later(i))[0].agent_id for i in range(3)]
    assert first == ["a", "b", "c"]  # never assigned: by id
    engine.release("c1", now=later(5))  # b is now least loaded
    assert engine.add_conversation("c3", department_id=None, now=later(6))[0].agent_id == "b"
    engine.release("c0", now=later(7))
    engine.release("c2", now=later(8))
    # a and c both have nothing; a was assigned longer ago than c.
    assert engine.add_conversation("c4", department_id=None, now=later(9))[0].agent_id == "a"


def test_nobody_online_falls_back_to_all_eligible_agents() -> None:
    engine = engine_with(agent("a"), agent("b"))
    assert engine.add_conversation("c1", department_id=None, now=NOW)[0].agent_id == "a"
    assert engine.add_conversation("c2", department_id=None, now=NOW)[0].agent_id == "b"


def test_preassigned_conversation_keeps_its_agent_and_counts_in_load() -> None:
    engine = engine_with(agent("a"), agent("b"), online=("a", "b"), max_concurrent=1)
    assert assigned_to(engine.add_conversation("c1", department_id=None, agent_id="a", now=NOW)) == [
        ("c1", "a", "assigned")
    ]
    assert engine.load("a") == 1
    assert engine.add_conversation("c2", department_id=None, now=NOW)[0].agent_id == "b"


# -- queue ----------------------------------------------------------------------------------------------------


def test_queue_positions_wait_and_pull_on_release() -> None:
    engine = engine_with(agent("a"), online=("a",), max_concurrent=1, response_minutes=4)
    engine.add_conversation("c1", department_id="sales", now=NOW)
    q2 = engine.add_conversation("c2", department_id="sales", now=NOW)
    q3 = engine.add_conversation("c3", department_id="sales", now=NOW)
    assert (q2[0].event, q2[0].queue_position, q2[0].wait_minutes) == ("queued", 1, 4)
    assert (q3[0].event, q3[0].queue_position, q3[0].wait_minutes) == ("queued", 2, 8)
    events = engine.release("c1", now=later(1))
    assert events == [
        Assignment(
            conversation_id="c2",
            agent_id="a",
            queue_position=None,
            wait_minutes=None,
            event="assigned",
            department_id="sales",
        ),
        Assignment(
            conversation_id="c3",
            agent_id=None,
            queue_position=1,
            wait_minutes=4,
            event="queue_moved",
            department_id="sales",
        ),
    ]
    assert engine.assignment("c3") == events[1].__class__(
        conversation_id="c3", agent_id=None, queue_position=1, wait_minutes=4, event="queued", department_id="sales"
    )


def test_queues_are_per_department() -> None:
    engine = engine_with(agent("s", "sales"), agent("b", "billing"), online=("s", "b"), max_concurrent=1)
    engine.add_conversation("s1", department_id="sales", now=NOW)
    engine.add_conversation("b1", department_id="billing", now=NOW)
    assert engine.add_conversation("s2", department_id="sales", now=NOW)[0].queue_position == 1
    assert engine.add_conversation("b2", department_id="billing", now=NOW)[0].queue_position == 1
    assert engine.add_conversation("n1", department_id=None, now=NOW)[0].queue_position == 1
    assert engine.queue("sales") == ["s2"]
    assert engine.queue(None) == ["n1"]
    # Billing's agent frees up: billing's queue moves, but n1 (older than b2? no: b2 came first) waits.
    assert assigned_to(engine.release("b1", now=NOW)) == [("b2", "b", "assigned")]


def test_freed_agent_takes_the_oldest_conversation_across_its_queues() -> None:
    engine = engine_with(agent("g"), agent("s", "sales"), online=("g", "s"), max_concurrent=1)
    engine.add_conversation("x", department_id="sales", now=NOW)
    engine.add_conversation("y", department_id="sales", now=NOW)
    engine.add_conversation("n1", department_id=None, now=NOW)  # queued first
    engine.add_conversation("b1", department_id="billing", now=NOW)
    engine.add_conversation("s1", department_id="sales", now=NOW)
    g = engine.assignment("x")
    assert g is not None
    holder = g.agent_id
    assert assigned_to(engine.release("x", now=NOW))[0] == ("n1", holder, "assigned")


def test_releasing_a_queued_conversation_moves_those_behind() -> None:
    engine = engine_with(agent("a"), online=("a",), max_concurrent=1)
    for i in range(4):
        engine.add_conversation(f"c{i}", department_id=None, now=NOW)
    events = engine.release("c2", now=NOW)
    assert [(e.conversation_id, e.queue_position, e.event) for e in events] == [("c3", 2, "queue_moved")]
    assert engine.queue(None) == ["c1", "c3"]


def test_agent_coming_online_pulls_and_going_offline_keeps() -> None:
    engine = engine_with(agent("a"), agent("b"), online=("a",), max_concurrent=1)
    engine.add_conversation("c1", department_id=None, now=NOW)
    assert engine.add_conversation("c2", department_id=None, now=NOW)[0].event == "queued"
    assert assigned_to(engine.set_online("b", True, now=NOW)) == [("c2", "b", "assigned")]
    assert engine.set_online("a", False, now=NOW) == []
    assert engine.assignment("c1") is not None
    assert engine.assignment("c1").agent_id == "a"  # type: ignore[union-attr]


def test_last_online_agent_leaving_lets_offline_agents_take_the_queue() -> None:
    engine = engine_with(agent("a"), agent("b"), online=("a",), max_concurrent=1)
    engine.add_conversation("c1", department_id=None, now=NOW)
    engine.add_conversation("c2", department_id=None, now=NOW)
    # With nobody online, the rule for new conversations (all eligible agents) applies to the queue too.
    assert assigned_to(engine.set_online("a", False, now=NOW)) == [("c2", "b", "assigned")]


def test_no_cap_means_no_queue() -> None:
    engine = engine_with(agent("a"), online=("a",), max_concurrent=None)
    for i in range(50):
        assert engine.add_conversation(f"c{i}", department_id=None, now=NOW)[0].agent_id == "a"
    assert engine.load("a") == 50


# -- manual and off -------------------------------------------------------------------------------------------


def test_manual_mode_assigns_nothing_and_first_claim_wins() -> None:
    engine = engine_with(agent("a"), agent("boss", admin=True), online=("a",), mode="manual")
    assert assigned_to(engine.add_conversation("c1", department_id=None, now=NOW)) == [("c1", None, "unassigned")]
    assert assigned_to(engine.claim("c1", "boss", now=NOW)) == [("c1", "boss", "claimed")]
    with pytest.raises(AlreadyClaimed) as info:
        engine.claim("c1", "a", now=NOW)
    assert (info.value.conversation_id, info.value.agent_id) == ("c1", "boss")
    assert engine.claim("c1", "boss", now=NOW) == []  # claiming again what one has changes nothing


def test_claims_ignore_the_cap_and_departments() -> None:
    engine = engine_with(agent("s", "sales"), mode="manual", max_concurrent=1)
    for i in range(3):
        engine.add_conversation(f"c{i}", department_id="billing", now=NOW)
        engine.claim(f"c{i}", "s", now=NOW)
    assert engine.load("s") == 3


def test_claiming_a_queued_conversation_in_auto_mode() -> None:
    engine = engine_with(agent("a"), online=("a",), max_concurrent=1)
    engine.add_conversation("c1", department_id=None, now=NOW)
    engine.add_conversation("c2", department_id=None, now=NOW)
    engine.add_conversation("c3", department_id=None, now=NOW)
    events = engine.claim("c2", "z", now=NOW)
    assert [(e.conversation_id, e.agent_id, e.queue_position, e.event) for e in events] == [
        ("c2", "z", None, "claimed"),
        ("c3", None, 1, "queue_moved"),
    ]
    with pytest.raises(AlreadyClaimed):
        engine.claim("c1", "z", now=NOW)


def test_off_mode_assigns_nothing() -> None:
    engine = engine_with(agent("a"), online=("a",), mode="off")
    assert engine.add_conversation("c1", department_id=None, now=NOW) == []
    assignment = engine.assignment("c1")
    assert assignment is not None
    assert (assignment.agent_id, assignment.event) == (None, "unassigned")
    assert engine.add_conversation("c2", department_id=None, agent_id="a", now=NOW)[0].agent_id == "a"


# -- reopen ---------------------------------------------------------------------------------------------------


def test_reopen_keeps_online_agent_and_reassigns_offline_one() -> None:
    engine = engine_with(agent("a"), agent("b"), online=("a", "b"))
    engine.add_conversation("c1", department_id=None, now=NOW)  # -> a
    engine.release("c1", now=later(1))
    assert assigned_to(engine.reopen("c1", now=later(2))) == [("c1", "a", "assigned")]
    engine.release("c1", now=later(3))
    engine.set_online("a", False, now=later(4))
    assert assigned_to(engine.reopen("c1", now=later(5))) == [("c1", "b", "assigned")]
    assert engine.reopen("c1", now=later(6)) == []  # already open


def test_reopen_in_manual_mode_stays_with_the_agent_even_offline() -> None:
    engine = engine_with(agent("a"), mode="manual")
    engine.add_conversation("c1", department_id=None, now=NOW)
    engine.claim("c1", "a", now=NOW)
    engine.release("c1", now=NOW)
    assert assigned_to(engine.reopen("c1", now=NOW)) == [("c1", "a", "claimed")]


def test_release_frees_the_slot() -> None:
    engine = engine_with(agent("a"), online=("a",))
    engine.add_conversation("c1", department_id=None, now=NOW)
    assert engine.load("a") == 1
    engine.release("c1", now=NOW)
    assert engine.load("a") == 0
    assert engine.release("c1", now=NOW) == []
    engine.forget("c1")
    assert engine.assignment("c1") is None


# -- office hours notices -------------------------------------------------------------------------------------


def test_offline_notice_at_most_once_per_user_per_hour() -> None:
    hours = OfficeHours.weekdays("09:00", "17:00", timezone="UTC")
    engine = RoutingEngine(Routing(office_hours=hours))
    night = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert engine.offline_notice("u1", now=night) is True
    assert engine.offline_notice("u1", now=night + timedelta(minutes=59)) is False
    assert engine.offline_notice("u2", now=night + timedelta(minutes=59)) is True
    assert engine.offline_notice("u1", now=night + timedelta(minutes=60)) is True
    assert engine.offline_notice("u1", now=NOW) is False  # open
    assert RoutingEngine(Routing()).offline_notice("u1", now=night) is False  # no office hours: always open


def test_offline_notices_are_pruned_but_still_once_per_hour() -> None:
    engine = RoutingEngine(Routing(office_hours=OfficeHours(timezone="UTC", hours={})))
    night = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    for i in range(3000):
        assert engine.offline_notice(f"u{i}", now=night + timedelta(seconds=2 * i)) is True
    assert engine.offline_notice("u2999", now=night + timedelta(seconds=2 * 2999 + 1)) is False
    assert len(engine.snapshot()["notices"]) < 3000


# -- misuse and persistence -----------------------------------------------------------------------------------


def test_misuse_raises_usage_errors() -> None:
    engine = engine_with(agent("a"))
    with pytest.raises(UsageError, match="unknown conversation"):
        engine.release("nope", now=NOW)
    with pytest.raises(UsageError, match="timezone-aware"):
        engine.add_conversation("c1", department_id=None, now=datetime(2026, 1, 1))
    with pytest.raises(UsageError, match="unknown agent"):
        engine.set_online("ghost", True, now=NOW)
    engine.add_conversation("c1", department_id=None, now=NOW)
    with pytest.raises(UsageError, match="already known"):
        engine.add_conversation("c1", department_id=None, now=NOW)
    with pytest.raises(UsageError, match="not archived"):
        engine.forget("c1")
    engine.release("c1", now=NOW)
    with pytest.raises(UsageError, match="archived"):
        engine.claim("c1", "a", now=NOW)
    with pytest.raises(UsageError, match="given twice"):
        engine.set_agents([agent("a"), agent("a")], now=NOW)


def test_snapshot_round_trips_through_json() -> None:
    agents = [agent("a", "sales"), agent("b"), agent("boss", admin=True)]
    engine = engine_with(*agents, online=("a",), max_concurrent=1)
    engine.add_conversation("c1", department_id="sales", now=NOW)
    engine.add_conversation("c2", department_id="sales", now=later(1))
    engine.add_conversation("c3", department_id=None, now=later(2))
    engine.release("c1", now=later(3))
    data = json.loads(json.dumps(engine.snapshot()))
    restored = RoutingEngine.from_snapshot(engine.routing, agents, data)
    assert restored.snapshot() == engine.snapshot()
    # Both decide the same from here on.
    for e in (engine, restored):
        e.add_conversation("c4", department_id="sales", now=later(4))
    assert restored.snapshot() == engine.snapshot()


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"format": 99},
        {"format": 1, "seq": 0, "online": [], "last": {}, "conversations": {"c": {"state": "bogus"}}},
        {
            "format": 1,
            "seq": 0,
            "online": [],
            "last": {},
            "conversations": {},
            "queues": [{"department_id": None, "conversations": ["ghost"]}],
            "notices": {},
        },
    ],
)
def test_malformed_snapshot_is_a_usage_error(data: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="malformed routing snapshot"):
        RoutingEngine.from_snapshot(Routing(), [], data)


def test_place_waiting_applies_a_raised_cap_after_loading() -> None:
    agents = [agent("a")]
    engine = engine_with(*agents, online=("a",), max_concurrent=1)
    for i in range(3):
        engine.add_conversation(f"c{i}", department_id=None, now=NOW)
    roomier = RoutingEngine.from_snapshot(Routing(max_concurrent=2), agents, engine.snapshot())
    assert roomier.queue(None) == ["c1", "c2"]
    events = roomier.place_waiting(now=later(1))
    assert [(e.conversation_id, e.agent_id, e.queue_position, e.event) for e in events] == [
        ("c1", "a", None, "assigned"),
        ("c2", None, 1, "queue_moved"),
    ]
    assert roomier.place_waiting(now=later(2)) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


SNAPSHOT_KEYS = ["format", "seq", "online", "last", "conversations", "queues", "notices"]


@given(key=st.sampled_from(SNAPSHOT_KEYS), value=json_values)
@example(key="last", value={"": []})  # an agent's last assignment that is an empty list
def test_any_damaged_snapshot_loads_or_is_a_usage_error(key: str, value: object) -> None:
    agents = [agent("a"), agent("b", "sales")]
    engine = engine_with(*agents, online=("a",), max_concurrent=1)
    for i in range(3):
        engine.add_conversation(f"c{i}", department_id="sales" if i else None, now=NOW)
    data = engine.snapshot()
    data[key] = value
    try:
        restored = RoutingEngine.from_snapshot(engine.routing, agents, data)
    except UsageError:
        return
    restored.add_conversation("new", department_id=None, now=NOW)
