"""Odd ids and deep JSON on the Slack endpoint are answered 400 and never reach the store, on SQLite and on
PostgreSQL; the hub keeps working and the next real event is relayed once."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import Agent, AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConnector, SlackLimiter
from norbit_connectors.slack._inbound import MAX_ID_LENGTH, is_slack_id, json_depth
from norbit_connectors.store import SQLiteStore, Store
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..slack.conftest import Workspace

pytestmark = pytest.mark.anyio

ENV = "NORBIT_TEST_POSTGRES_DSN"
CONV = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))
ODD_IDS = [
    pytest.param("Ev\ud800", id="lone-surrogate"),
    pytest.param("Ev\x001", id="nul"),
    pytest.param("E" * 10_000, id="10kB"),
    pytest.param("Ev 1", id="space"),
    pytest.param("Ev\u00e91", id="non-ascii"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param == "sqlite":
        return lambda: SQLiteStore(tmp_path / "hub.sqlite3")
    from norbit_connectors.store import PostgresStore

    dsn = request.getfixturevalue("postgres_dsn")
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:  # a fresh start for each test on the module's database
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        for table in tables:
            conn.execute(f'DROP TABLE "{table}" CASCADE')
    return lambda: PostgresStore(dsn)


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


class Running:
    def __init__(self, hub: Hub, slack: SlackConnector, channel: str, replies: list[AgentReply]) -> None:
        self.hub = hub
        self.slack = slack
        self.channel = channel
        self.replies = replies


@asynccontextmanager
async def running(workspace: Workspace, store: Store) -> AsyncIterator[Running]:
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    replies: list[AgentReply] = []

    async def on_agent_reply(reply: AgentReply) -> None:
        replies.append(reply)

    hub = Hub(store=store, connectors=[slack], agents=[Agent(id="ann", name="Ann")], on_agent_reply=on_agent_reply)
    async with hub:
        await hub.customer_message(CONV, Message(id="m1", text="Hello?"))
        await hub.wait_idle()
        channel = await slack.channel_for(CONV.id)
        assert channel is not None
        workspace.emu.join(channel, workspace.ann)
        yield Running(hub, slack, channel, replies)
        # Whatever was refused, the next real answer is relayed, once.
        answer = workspace.emu.post_as_user(workspace.ann, channel, "still here")
        assert (await answer.deliver(slack.handle_http)).status == 200
        await hub.wait_idle()
        assert [r.message.text for r in replies] == ["still here"]
        assert await hub.dead_letters() == []


async def _signed(workspace: Workspace, slack: SlackConnector, body: bytes, content_type: str) -> int:
    headers = {"Content-Type": content_type, **workspace.emu.sign(body)}
    return (await slack.handle_http(headers, body)).status


def _event_body(workspace: Workspace, event: dict[str, Any], **envelope: Any) -> bytes:
    request = workspace.emu.event_request(event)
    return json.dumps({**request.payload, **envelope}).encode()


@pytest.mark.parametrize("odd", ODD_IDS)
async def test_odd_event_ids_are_refused(workspace: Workspace, make_store: Callable[[], Store], odd: str) -> None:
    async with running(workspace, make_store()) as run:
        event = dict(workspace.emu.post_as_user(workspace.ann, run.channel, "hi").event)
        body = _event_body(workspace, event, event_id=odd)
        assert await _signed(workspace, run.slack, body, "application/json") == 400
        for field in ("team_id", "api_app_id"):
            body = _event_body(workspace, event, **{field: odd})
            assert await _signed(workspace, run.slack, body, "application/json") == 400


@pytest.mark.parametrize("field", ["channel", "user", "ts", "thread_ts"])
@pytest.mark.parametrize("odd", ODD_IDS)
async def test_odd_ids_inside_the_event_are_refused(
    workspace: Workspace, make_store: Callable[[], Store], field: str, odd: str
) -> None:
    async with running(workspace, make_store()) as run:
        event = dict(workspace.emu.post_as_user(workspace.ann, run.channel, "hi").event)
        body = _event_body(workspace, {**event, field: odd})
        assert await _signed(workspace, run.slack, body, "application/json") == 400


@pytest.mark.parametrize("odd", [pytest.param("a\x00b", id="nul"), pytest.param("T" * 10_000, id="10kB")])
@pytest.mark.parametrize("field", ["trigger_id", "channel_id", "user_id", "team_id"])
async def test_odd_ids_in_a_slash_command_are_refused(
    workspace: Workspace, make_store: Callable[[], Store], field: str, odd: str
) -> None:
    async with running(workspace, make_store()) as run:
        command = workspace.emu.slash_command("/archive", workspace.ann, run.channel)
        body = urllib.parse.urlencode({**command.payload, field: odd}).encode()
        assert await _signed(workspace, run.slack, body, "application/x-www-form-urlencoded") == 400
        assert not workspace.emu.channels[run.channel]["is_archived"]


_CLICK_CASES = [
    *(
        pytest.param(where, odd.values[0], id=f"{where}-{odd.id}")
        for where in ("trigger_id", "action_ts")
        for odd in ODD_IDS
    ),
    # A button value is the host's conversation id: any printable text up to Block Kit's 2,000 characters.
    *(pytest.param("value", odd.values[0], id=f"value-{odd.id}") for odd in ODD_IDS[:3]),
]


@pytest.mark.parametrize(("where", "odd"), _CLICK_CASES)
async def test_odd_ids_in_a_button_click_are_refused(
    workspace: Workspace, make_store: Callable[[], Store], where: str, odd: str
) -> None:
    async with running(workspace, make_store()) as run:
        main = workspace.main
        card = [m for m in workspace.emu.messages(main) if m.get("blocks")][-1]
        click = workspace.emu.block_action(workspace.bob, main, card["ts"], JOIN_ACTION_ID, value=CONV.id)
        payload = dict(click.payload)
        if where == "trigger_id":
            payload["trigger_id"] = odd
        else:
            payload["actions"] = [{**payload["actions"][0], where: odd}]
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        assert await _signed(workspace, run.slack, body, "application/x-www-form-urlencoded") == 400
        await run.hub.wait_idle()
        assert workspace.bob not in workspace.emu.channels[run.channel]["members"]


def _deep_form(prefix: dict[str, str], json_head: str, deep: str) -> bytes:
    """A form whose last field is ``payload``: ``json_head``, then ``deep`` as it is (``[`` and ``]`` need no
    escaping in a form, so that 300,000 levels stay ~600 kB), then the closing ``}``."""
    head = urllib.parse.urlencode(prefix) + ("&" if prefix else "") + "payload=" + urllib.parse.quote(json_head)
    return (head + deep + urllib.parse.quote("}")).encode("ascii")


@pytest.mark.parametrize("depth", [100, 900, 300_000])
async def test_deeply_nested_json_is_refused(workspace: Workspace, make_store: Callable[[], Store], depth: int) -> None:
    form = "application/x-www-form-urlencoded"
    async with running(workspace, make_store()) as run:
        deep = "[" * depth + "]" * depth
        limit = run.slack.max_body_bytes
        # An event.
        event = dict(workspace.emu.post_as_user(workspace.ann, run.channel, "hi").event)
        body = _event_body(workspace, {**event, "extra": "DEEP"}).replace(b'"DEEP"', deep.encode())
        assert len(body) < limit
        assert await _signed(workspace, run.slack, body, "application/json") == 400
        # A click (interactivity).
        click = json.dumps({"type": "block_actions", "user": {"id": workspace.bob}, "actions": [], "x": "DEEP"})
        body = _deep_form({}, click[: click.index('"DEEP"')], deep)
        assert len(body) < limit
        assert await _signed(workspace, run.slack, body, form) == 400
        # A slash command's form carrying it.
        command = dict(workspace.emu.slash_command("/archive", workspace.ann, run.channel).payload)
        body = _deep_form(command, '{"type": "block_actions", "x": ', deep)
        assert len(body) < limit
        assert await _signed(workspace, run.slack, body, form) == 400
        assert not workspace.emu.channels[run.channel]["is_archived"]


# ------------------------------------------------------------------------------------------ the checks (pure)

_real_ids = (
    st.from_regex(r"[CGDUWTBEA][A-Z0-9]{8,11}", fullmatch=True)
    | st.from_regex(r"[0-9]{10}\.[0-9]{6}", fullmatch=True)
    | st.from_regex(r"Ev[A-Z0-9]{8,12}", fullmatch=True)
    | st.from_regex(r"[0-9]{10,13}\.[0-9]{6,12}\.[0-9a-f]{32}", fullmatch=True)
)


@given(value=_real_ids)
def test_slack_shaped_ids_are_accepted(value: str) -> None:
    assert is_slack_id(value)


@given(value=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_accepted_ids_are_safe_store_keys(value: str) -> None:
    if is_slack_id(value):
        assert 1 <= len(value) <= MAX_ID_LENGTH
        assert value.encode("ascii").decode("ascii") == value  # no surrogates, nothing outside ASCII
        assert value.isprintable() and not any(c.isspace() for c in value) and "\x00" not in value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


_json = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=30,
)


@given(value=_json)
def test_json_depth_counts_the_nesting(value: Any) -> None:
    assert json_depth(value) == _depth(value)


def test_json_depth_does_not_recurse() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001
