"""Odd and hostile ids against real stores (an SQLite file, PostgreSQL): ids the stores or Slack cannot carry are
refused at the call with a UsageError, nothing is written, and the hub goes on; every id within the bounds works
end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norbit_connectors import Agent, Conversation, Message, UsageError, User
from norbit_connectors._validate import MAX_ID_LENGTH
from norbit_connectors.hub import Hub
from norbit_connectors.store import PostgresStore, SQLiteStore, Store
from tests._postgres import fresh_database
from tests.hub._recording import RecordingConnector

pytestmark = pytest.mark.anyio


HOSTILE = [
    pytest.param("conv\x00id", id="NUL"),
    pytest.param("conv\ud800", id="lone-high-surrogate"),
    pytest.param("\udfffconv", id="lone-low-surrogate"),
    pytest.param("c" * 10_000, id="10k"),
    pytest.param("c" * (MAX_ID_LENGTH + 1), id="129"),
    pytest.param("line\nbreak", id="newline"),
    pytest.param("esc\x1b[31m", id="escape"),
    pytest.param("del\x7f", id="DEL"),
    pytest.param("c1\x85", id="C1-control"),
    pytest.param("", id="empty"),
]

ODD_BUT_FINE = [
    "💬" * MAX_ID_LENGTH,
    "'; DROP TABLE norbit_jobs; --",
    "%_\\%",
    "\u202erlt",
    "ü" * MAX_ID_LENGTH,
    "slack:join:x",
    "conv/1?x=y#z",
    "a\u2028b",
    "🏳️‍🌈",
    " ",
    "42",
]


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    """One database for the module: its tests use distinct ids."""
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param == "sqlite":
        counter = iter(range(1_000_000))
        return lambda: SQLiteStore(tmp_path / f"hub-{next(counter)}.sqlite3")
    dsn: str = request.getfixturevalue("postgres_dsn")

    def postgres() -> Store:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return PostgresStore(dsn, min_size=0, max_size=2)

    return postgres


@asynccontextmanager
async def running(store: Store) -> AsyncIterator[tuple[Hub, RecordingConnector]]:
    rec = RecordingConnector()
    async with Hub(store=store, connectors=[rec], agents=[Agent(id="a1", name="Ann")], poll_interval=0.02) as hub:
        yield hub, rec


@pytest.mark.parametrize("bad", HOSTILE)
async def test_hostile_ids_are_refused_at_the_call_and_nothing_is_written(
    make_store: Callable[[], Store], bad: str
) -> None:
    user = User(id="u1", name="Zoë")
    async with running(make_store()) as (hub, rec):
        conv = Conversation(id="c", user=user)
        msg = Message(id="m", text="t")
        calls = [
            ("Conversation.id", lambda: hub.customer_message(Conversation(id=bad, user=user), msg)),
            ("User.id", lambda: hub.customer_message(Conversation(id="c", user=User(id=bad, name="Z")), msg)),
            ("Message.id", lambda: hub.customer_message(conv, Message(id=bad, text="t"))),
            ("Message.id", lambda: hub.bot_message(conv, Message(id=bad, text="t"))),
            ("Agent.id", lambda: hub.agent_message(conv, msg, Agent(id=bad, name="A"))),
            ("Conversation.id", lambda: hub.start_human_takeover(Conversation(id=bad, user=user, bot_active=True))),
            ("conversation_id", lambda: hub.archive(bad)),
            ("conversation_id", lambda: hub.conversation(bad)),
        ]
        for field, call in calls:
            with pytest.raises(UsageError) as caught:
                await call()
            assert str(caught.value).startswith(f"{field} must")
            assert len(str(caught.value)) < 200  # the id is not echoed back
        assert await hub.store.pending_jobs() == 0
        assert await hub.store.scan("conv") == []
        assert await hub.store.transcript("c") == []
        # The hub and its store go on working.
        await hub.customer_message(Conversation(id="c", user=user), Message(id="ok", text="still fine"))
        await hub.wait_idle()
        assert await hub.dead_letters() == []
    assert rec.texts() == ["still fine"]


async def test_odd_ids_within_the_bounds_work_end_to_end(make_store: Callable[[], Store]) -> None:
    async with running(make_store()) as (hub, rec):
        for n, cid in enumerate(ODD_BUT_FINE):
            conversation = Conversation(id=cid, user=User(id=cid, name="Zoë"))
            await hub.customer_message(conversation, Message(id=cid, text=f"t{n}"))
        await hub.wait_idle()
        for cid in ODD_BUT_FINE:
            state = await hub.conversation(cid)
            assert state is not None and state.conversation.id == cid
            assert [e.message.id for e in await hub.store.transcript(cid)] == [cid]
            await hub.archive(cid)
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        assert await hub.store.pending_jobs() == 0
    assert sorted(rec.texts()) == sorted([f"t{n}" for n in range(len(ODD_BUT_FINE))] + ["Archived"] * len(ODD_BUT_FINE))


ids_within_bounds = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=MAX_ID_LENGTH)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ids_within_bounds, min_size=1, max_size=12, unique=True))
async def test_every_id_the_bounds_allow_is_stored_and_found_again(
    make_store: Callable[[], Store], cids: list[str]
) -> None:
    async with running(make_store()) as (hub, _):
        for cid in cids:
            await hub.customer_message(Conversation(id=cid, user=User(id=cid, name="Z")), Message(id=cid, text="t"))
        await hub.wait_idle()
        for cid in cids:
            assert (await hub.conversation(cid)) is not None
            assert len(await hub.store.transcript(cid)) == 1
        assert await hub.dead_letters() == []
