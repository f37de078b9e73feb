"""Who may act from Slack: with agent_links set, only linked agents and the assigned agent archive a
conversation or join it; a Join value counts only on its own card; requests of another workspace or app are
acknowledged and ignored."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import Agent, AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConnector, SlackLimiter
from norbit_connectors.slack._authz import Ours, card_matches, foreign, may_act
from norbit_connectors.store import Batch, MemoryStore, Put
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..slack.conftest import Workspace

AGENTS = [
    Agent(id="ann", name="Ann", email="ann@support.example"),
    Agent(id="carl", name="Carl", email="carl@support.example"),  # not in agent_links: matched by email
]
C1 = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))
C2 = Conversation(id="c2", user=User(id="u2", name="Max Mustermann"))
ARCHIVING = "Archiving this conversation and its channel."
CHECKING = "Checking that you may archive this conversation: if you may, its channel is archived."
NOT_RELAYED = (
    "Only the messages of the agents linked to this app, and of the conversation's assigned agent, reach the "
    "customer: this was not sent to them."
)


class Team:
    """The emulated workspace plus Eve (a member, no agent) and Carl (an agent by email only)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.emu = ws.emu
        self.eve = ws.emu.add_user("eve", email="eve@elsewhere.example", real_name="Eve")
        self.carl = ws.emu.add_user("carl", email="carl@support.example", real_name="Carl Agent")
        ws.emu.join(ws.main, self.eve)
        ws.emu.join(ws.main, self.carl)


class Host:
    def __init__(self) -> None:
        self.replies: list[AgentReply] = []
        self.archived: list[str] = []
        self.edits: list[AgentReply] = []
        self.deletes: list[tuple[str, str]] = []
        self.hub: Hub | None = None

    async def on_agent_reply(self, reply: AgentReply) -> None:
        self.replies.append(reply)

    async def on_archive(self, conversation_id: str) -> None:
        self.archived.append(conversation_id)

    async def on_agent_edit(self, reply: AgentReply) -> None:
        self.edits.append(reply)

    async def on_agent_delete(self, conversation_id: str, message_id: str) -> None:
        self.deletes.append((conversation_id, message_id))

    @property
    def running(self) -> Hub:
        assert self.hub is not None
        return self.hub


@pytest.fixture
def team() -> Iterator[Team]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Team(Workspace(emulator))


@asynccontextmanager
async def running(team: Team, host: Host, *conversations: Conversation, **config: Any) -> AsyncIterator[SlackConnector]:
    slack = SlackConnector(team.ws.config(**config), limiter=SlackLimiter(enabled=False))
    hub = Hub(
        store=MemoryStore(),
        connectors=[slack],
        agents=AGENTS,
        on_agent_reply=host.on_agent_reply,
        on_archive=host.on_archive,
        on_agent_edit=host.on_agent_edit,
        on_agent_delete=host.on_agent_delete,
    )
    host.hub = hub
    async with hub:
        for conversation in conversations or (C1,):
            await hub.customer_message(conversation, Message(id="m1", text=f"Hello from {conversation.id}"))
        await hub.wait_idle()
        yield slack
        await hub.wait_idle()
        assert await hub.dead_letters() == []


async def _channel(team: Team, slack: SlackConnector, conversation: Conversation, *members: str) -> str:
    channel = await slack.channel_for(conversation.id)
    assert channel is not None
    for member in members:
        team.emu.join(channel, member)
    return channel


def _card_of(team: Team, conversation: Conversation) -> dict[str, Any]:
    for message in team.emu.messages(team.ws.main):
        if f"Hello from {conversation.id}" in json.dumps(message.get("blocks") or []):
            return message
    raise AssertionError(f"no card for {conversation.id}")


def _told(team: Team, user: str) -> list[str]:
    return [str(m["text"]) for m in team.emu.ephemeral_messages() if m["user"] == user]


def _signed(team: Team, body: bytes, content_type: str) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": content_type, **team.emu.sign(body)}, body


# ----------------------------------------------------------------------------------------------- /archive


@pytest.mark.anyio
async def test_a_member_who_is_no_agent_cannot_archive(team: Team) -> None:
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.eve)
        response = await team.emu.slash_command("/archive", team.eve, channel).deliver(slack.handle_http)
        assert response.status == 200
        answer = json.loads(response.body)
        assert answer == {"response_type": "ephemeral", "text": CHECKING}
    assert not team.emu.channels[channel]["is_archived"]
    assert host.archived == []
    (told,) = _told(team, team.eve)
    assert (
        told
        == "Only the agents linked to this app, and the conversation's assigned agent, can archive this conversation."
    )


@pytest.mark.anyio
async def test_linked_and_assigned_agents_can_archive(team: Team) -> None:
    host = Host()
    assigned = Conversation(id="c3", user=User(id="u3", name="Ida"), agent_id="carl")
    async with running(team, host, C1, assigned) as slack:
        linked = await _channel(team, slack, C1, team.ws.ann)
        by_link = await team.emu.slash_command("/archive", team.ws.ann, linked).deliver(slack.handle_http)
        carls = await _channel(team, slack, assigned, team.carl)
        by_email = await team.emu.slash_command("/archive", team.carl, carls).deliver(slack.handle_http)
        assert json.loads(by_link.body)["text"] == ARCHIVING
        assert json.loads(by_email.body)["text"] == CHECKING  # Carl is an agent by email: looked up in the worker
    assert sorted(host.archived) == ["c1", "c3"]
    assert _told(team, team.carl) == []


@pytest.mark.anyio
async def test_an_agent_by_email_cannot_archive_a_conversation_of_someone_else(team: Team) -> None:
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.carl)
        response = await team.emu.slash_command("/archive", team.carl, channel).deliver(slack.handle_http)
        assert json.loads(response.body)["text"] == CHECKING
    assert host.archived == []
    assert not team.emu.channels[channel]["is_archived"]
    (told,) = _told(team, team.carl)
    assert told.startswith("Only the agents linked to this app")


@pytest.mark.anyio
async def test_without_agent_links_every_member_can_archive(team: Team) -> None:
    host = Host()
    async with running(team, host, agent_links={}) as slack:
        channel = await _channel(team, slack, C1, team.eve)
        response = await team.emu.slash_command("/archive", team.eve, channel).deliver(slack.handle_http)
        assert json.loads(response.body)["text"] == ARCHIVING
    assert host.archived == ["c1"]


@pytest.mark.anyio
async def test_the_archive_and_join_acks_make_no_slack_call(team: Team) -> None:
    """Whether Carl (an agent by email) may act needs users.info: that is looked up in the worker, never while
    Slack waits for the acknowledgement (3 seconds)."""
    host = Host()
    assigned = Conversation(id="c3", user=User(id="u3", name="Ida"), agent_id="carl")
    async with running(team, host, C1, assigned) as slack:
        channel = await _channel(team, slack, assigned, team.carl)
        card = _card_of(team, C1)
        click = team.emu.block_action(team.carl, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C1.id)
        command = team.emu.slash_command("/archive", team.carl, channel)
        team.emu.clear_calls()
        assert (await click.deliver(slack.handle_http)).status == 200
        answer = await command.deliver(slack.handle_http)
        assert [call.method for call in team.emu.calls] == []
        assert json.loads(answer.body)["text"] == CHECKING
        await host.running.wait_idle()
        assert team.emu.calls_to("users.info")  # looked up afterwards, by the workers
    assert host.archived == ["c3"]
    (told,) = _told(team, team.carl)
    assert (
        told == "Only the agents linked to this app, and the conversation's assigned agent, can join this conversation."
    )


@pytest.mark.anyio
async def test_commands_without_a_trigger_id_are_not_taken_for_one_another(team: Team) -> None:
    host = Host()
    async with running(team, host, C1, C2) as slack:
        for conversation in (C1, C2):
            channel = await _channel(team, slack, conversation, team.ws.ann)
            command = team.emu.slash_command("/archive", team.ws.ann, channel)
            form = urllib.parse.urlencode({k: v for k, v in command.payload.items() if k != "trigger_id"}).encode()
            answer = await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))
            assert json.loads(answer.body)["text"] == ARCHIVING
            await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))  # a retry: once
    assert sorted(host.archived) == ["c1", "c2"]


# ---------------------------------------------------------------------------- archiving the channel in Slack


def _refused_archive_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.levelname == "WARNING" and "archived its channel" in r.getMessage() for r in caplog.records)


@pytest.mark.anyio
async def test_a_channel_archived_in_slack_by_a_member_who_is_no_agent_is_unarchived(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    host = Host()
    async with running(team, host, user_token=team.emu.user_token) as slack:
        channel = await _channel(team, slack, C1, team.eve)
        assert (await team.emu.archive_as_user(team.eve, channel).deliver(slack.handle_http)).status == 200
        await host.running.wait_idle()
        state = await host.running.conversation(C1.id)
        assert not team.emu.channels[channel]["is_archived"]
        await host.running.customer_message(C1, Message(id="m2", text="Still there?"))
        await host.running.wait_idle()
        assert await slack.channel_for(C1.id) == channel
    assert state is not None and state.status != "archived"
    assert host.archived == []
    assert "Still there?" in [m["text"] for m in team.emu.messages(channel)]
    assert _told(team, team.eve) == [
        "Only the agents linked to this app, and the conversation's assigned agent, can archive this conversation. "
        "The channel was unarchived."
    ]
    assert _refused_archive_logged(caplog)


@pytest.mark.anyio
async def test_without_a_user_token_a_refused_archive_keeps_the_conversation_open(
    team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.eve)
        await team.emu.archive_as_user(team.eve, channel).deliver(slack.handle_http)
        await host.running.wait_idle()
        state = await host.running.conversation(C1.id)
        # A Join click meanwhile is no failing invitation into the archived channel.
        click = team.emu.block_action(team.ws.bob, team.ws.main, _card_of(team, C1)["ts"], JOIN_ACTION_ID, value=C1.id)
        await click.deliver(slack.handle_http)
        await host.running.wait_idle()
        assert await host.running.dead_letters() == []
        # The bot cannot unarchive: the customer's next message continues in a new channel.
        await host.running.customer_message(C1, Message(id="m2", text="Still there?"))
        await host.running.wait_idle()
        fresh = await slack.channel_for(C1.id)
    assert state is not None and state.status != "archived"
    assert host.archived == []
    assert fresh is not None and fresh != channel
    assert "Still there?" in [m["text"] for m in team.emu.messages(fresh)]
    note = (
        "Only the agents linked to this app, and the conversation's assigned agent, can archive this conversation. "
        "The conversation stays open; its next message opens a new channel."
    )
    # A direct message first (the emulator has no direct messages), then a note under the notice card.
    assert [c.args.get("text") for c in team.emu.calls_to("chat.postMessage") if c.args.get("channel") == team.eve] == [
        note
    ]
    assert _told(team, team.eve) == [note]
    assert _refused_archive_logged(caplog)


@pytest.mark.anyio
async def test_the_assigned_agent_may_archive_the_channel_in_slack(team: Team) -> None:
    host = Host()
    assigned = Conversation(id="c3", user=User(id="u3", name="Ida"), agent_id="carl")
    async with running(team, host, assigned) as slack:
        channel = await _channel(team, slack, assigned, team.carl)
        await team.emu.archive_as_user(team.carl, channel).deliver(slack.handle_http)
    assert host.archived == ["c3"]
    assert team.emu.channels[channel]["is_archived"]


# ------------------------------------------------------------------------------- who reaches the customer


@pytest.mark.anyio
async def test_only_agents_messages_reach_the_customer(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.eve, team.ws.ann)
        said = team.emu.post_as_user(team.eve, channel, "I am no agent")
        await said.deliver(slack.handle_http)
        await team.emu.edit_as_user(team.eve, channel, said.event["ts"], "still no agent").deliver(slack.handle_http)
        # A message of Eve's relayed before agent_links were set, deleted now.
        old = team.emu.post_as_user(team.eve, channel, "from before").event["ts"]
        mapping = {"conversation_id": C1.id, "message_id": f"slack:{channel}:{old}"}
        await slack.context.store.commit(
            Batch(puts=[Put(namespace="slack.ts", key=f"{channel}:{old}", value=mapping)]), now=0.0
        )
        await team.emu.delete_as_user(team.eve, channel, old).deliver(slack.handle_http)
        await team.emu.post_as_user(team.ws.ann, channel, "I am one").deliver(slack.handle_http)
    assert [r.message.text for r in host.replies] == ["I am one"]
    assert host.edits == []
    assert host.deletes == []
    assert _told(team, team.eve) == [NOT_RELAYED] * 3
    assert _told(team, team.ws.ann) == []
    refused = [r for r in caplog.records if r.levelname == "WARNING" and "not relaying" in r.getMessage()]
    assert len(refused) == 3


@pytest.mark.anyio
async def test_without_agent_links_every_members_messages_reach_the_customer(team: Team) -> None:
    host = Host()
    async with running(team, host, agent_links={}) as slack:
        channel = await _channel(team, slack, C1, team.eve)
        await team.emu.post_as_user(team.eve, channel, "I am no agent").deliver(slack.handle_http)
    assert [r.message.text for r in host.replies] == ["I am no agent"]
    assert _told(team, team.eve) == []


# ------------------------------------------------------------------------------------ notice card records


@pytest.mark.anyio
async def test_an_archived_or_replaced_link_forgets_its_card(team: Team) -> None:
    host = Host()
    async with running(team, host, C1, C2) as slack:
        store = slack.context.store
        records = [f"{team.ws.main}:{_card_of(team, c)['ts']}" for c in (C1, C2)]
        for record in records:
            assert await store.get("slack.notice", record) is not None
        await host.running.archive(C1.id)  # by the host
        second = await _channel(team, slack, C2, team.ws.ann)
        await team.emu.slash_command("/archive", team.ws.ann, second).deliver(slack.handle_http)  # from Slack
        await host.running.wait_idle()
        for record in records:
            assert await store.get("slack.notice", record) is None
        # C1 comes back: its link is replaced by a new channel with a new card, which is recorded.
        await host.running.customer_message(C1, Message(id="m2", text="Hello again from c1"))
        await host.running.wait_idle()
        cards = [m for m in team.emu.messages(team.ws.main) if "Hello from c1" in json.dumps(m.get("blocks") or [])]
        assert len(cards) == 2
        assert await store.get("slack.notice", f"{team.ws.main}:{cards[-1]['ts']}") is not None


# ---------------------------------------------------------------------------------------------------- Join


@pytest.mark.anyio
async def test_a_forged_join_value_does_not_invite_into_another_conversation(team: Team) -> None:
    ann = team.ws.ann
    async with running(team, Host(), C1, C2) as slack:
        first = await _channel(team, slack, C1)
        second = await _channel(team, slack, C2)
        card = _card_of(team, C1)
        # The button on C1's card, its value edited to C2's id.
        forged = team.emu.block_action(ann, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C2.id)
        assert (await forged.deliver(slack.handle_http)).status == 200
        # A Join value on a message that is no card at all.
        other = team.emu.post_as_user(team.eve, team.ws.main, "hi").event
        stray = team.emu.block_action(ann, team.ws.main, other["ts"], JOIN_ACTION_ID, value=C1.id)
        assert (await stray.deliver(slack.handle_http)).status == 200
    assert ann not in team.emu.channels[second]["members"]
    assert ann not in team.emu.channels[first]["members"]
    assert _told(team, ann) == ["This Join button does not belong to this card, so nothing was done."] * 2


@pytest.mark.anyio
async def test_the_join_value_of_its_own_card_invites(team: Team) -> None:
    ann = team.ws.ann
    async with running(team, Host(), C1, C2) as slack:
        second = await _channel(team, slack, C2)
        card = _card_of(team, C2)
        click = team.emu.block_action(ann, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C2.id)
        assert (await click.deliver(slack.handle_http)).status == 200
    assert ann in team.emu.channels[second]["members"]
    assert _told(team, ann) == []


@pytest.mark.anyio
async def test_a_card_posted_before_cards_were_recorded_still_binds_its_value(team: Team) -> None:
    ann = team.ws.ann
    async with running(team, Host(), C1, C2) as slack:
        first = await _channel(team, slack, C1)
        second = await _channel(team, slack, C2)
        card = _card_of(team, C1)
        # As an earlier version left it: no record of the card, only the link naming its notice.
        store = slack.context.store
        record = f"{team.ws.main}:{card['ts']}"
        assert await store.get("slack.notice", record) is not None
        await store.commit(Batch(puts=[Put(namespace="slack.notice", key=record, delete=True)]), now=0.0)
        forged = team.emu.block_action(ann, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C2.id)
        await forged.deliver(slack.handle_http)
        click = team.emu.block_action(ann, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C1.id)
        await click.deliver(slack.handle_http)
    assert ann not in team.emu.channels[second]["members"]
    assert ann in team.emu.channels[first]["members"]
    assert _told(team, ann) == ["This Join button does not belong to this card, so nothing was done."]


@pytest.mark.anyio
async def test_a_member_who_is_no_agent_cannot_join(team: Team) -> None:
    async with running(team, Host()) as slack:
        channel = await _channel(team, slack, C1)
        card = _card_of(team, C1)
        click = team.emu.block_action(team.eve, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C1.id)
        assert (await click.deliver(slack.handle_http)).status == 200
    assert team.eve not in team.emu.channels[channel]["members"]
    (told,) = _told(team, team.eve)
    assert told.startswith("Only the agents linked to this app")


# --------------------------------------------------------------------------------------- other workspaces


def _foreign_event(team: Team, channel: str, **envelope: str) -> tuple[dict[str, str], bytes]:
    request = team.emu.post_as_user(team.ws.ann, channel, "from elsewhere")
    return _signed(team, json.dumps({**request.payload, **envelope}).encode(), "application/json")


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["team_id", "api_app_id"])
async def test_requests_of_another_workspace_or_app_are_ignored(team: Team, field: str) -> None:
    other = {"team_id": "T0OTHERWS", "api_app_id": "A0OTHERAPP"}[field]
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.ws.ann)
        event = await slack.handle_http(*_foreign_event(team, channel, **{field: other}))
        assert event.status == 200
        command = team.emu.slash_command("/archive", team.ws.ann, channel)
        form = urllib.parse.urlencode({**command.payload, field: other}).encode()
        answer = await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))
        assert answer.status == 200
        assert json.loads(answer.body)["text"] == "This app does not serve this workspace, so nothing was done."
        card = _card_of(team, C1)
        click = dict(team.emu.block_action(team.ws.bob, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C1.id).payload)
        if field == "team_id":
            click["team"] = {**click["team"], "id": other}
            click["user"] = {**click["user"], "team_id": other}
        else:
            click["api_app_id"] = other
        form = urllib.parse.urlencode({"payload": json.dumps(click)}).encode()
        assert (await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))).status == 200
    assert host.replies == []
    assert host.archived == []
    assert not team.emu.channels[channel]["is_archived"]
    assert team.ws.bob not in team.emu.channels[channel]["members"]


@pytest.mark.anyio
@pytest.mark.parametrize("field", ["team_id", "api_app_id"])
async def test_requests_naming_no_workspace_or_app_are_ignored(team: Team, field: str) -> None:
    host = Host()
    async with running(team, host) as slack:
        channel = await _channel(team, slack, C1, team.ws.ann)
        request = team.emu.post_as_user(team.ws.ann, channel, "from nowhere")
        event = {k: v for k, v in request.payload.items() if k != field}
        if field == "team_id":
            event["authorizations"] = [{k: v for k, v in a.items() if k != "team_id"} for a in event["authorizations"]]
        assert (await slack.handle_http(*_signed(team, json.dumps(event).encode(), "application/json"))).status == 200
        command = team.emu.slash_command("/archive", team.ws.ann, channel)
        form = urllib.parse.urlencode({k: v for k, v in command.payload.items() if k != field}).encode()
        answer = await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))
        assert json.loads(answer.body)["text"] == "This app does not serve this workspace, so nothing was done."
        card = _card_of(team, C1)
        click = dict(team.emu.block_action(team.ws.bob, team.ws.main, card["ts"], JOIN_ACTION_ID, value=C1.id).payload)
        if field == "team_id":
            click["team"] = None
            click["user"] = {k: v for k, v in click["user"].items() if k != "team_id"}
        else:
            del click["api_app_id"]
        form = urllib.parse.urlencode({"payload": json.dumps(click)}).encode()
        assert (await slack.handle_http(*_signed(team, form, "application/x-www-form-urlencoded"))).status == 200
    assert host.replies == []
    assert host.archived == []
    assert not team.emu.channels[channel]["is_archived"]
    assert team.ws.bob not in team.emu.channels[channel]["members"]


@pytest.mark.anyio
async def test_url_verification_names_no_workspace_and_is_answered(team: Team) -> None:
    async with running(team, Host()) as slack:
        request = team.emu.url_verification("the-challenge")
        answer = await request.deliver(slack.handle_http)
    assert json.loads(answer.body) == {"challenge": "the-challenge"}


# --------------------------------------------------------------------------------------- the rules (pure)

_ids = st.from_regex(r"[TEAU][A-Z0-9]{2,6}", fullmatch=True)
_maybe = st.none() | _ids


_ours = st.builds(Ours, team_id=_maybe, enterprise_id=_maybe, app_id=_maybe, enterprise_install=st.booleans())


@given(ours=_ours)
def test_our_own_ids_are_never_foreign(ours: Ours) -> None:
    assert foreign(ours, team_id=ours.team_id, enterprise_id=ours.enterprise_id, app_id=ours.app_id) is None


@given(ours=_ours)
def test_a_connector_that_knows_nothing_compares_nothing(ours: Ours) -> None:
    unknown = Ours(enterprise_install=ours.enterprise_install)
    assert foreign(unknown, team_id=ours.team_id, enterprise_id=ours.enterprise_id, app_id=ours.app_id) is None


@given(team=_ids, app=_ids, enterprise=_maybe)
def test_a_request_missing_our_workspace_or_app_is_foreign(team: str, app: str, enterprise: str | None) -> None:
    ours = Ours(team_id=team, app_id=app, enterprise_id=enterprise)
    assert foreign(ours, team_id=None, enterprise_id=enterprise, app_id=app) is not None
    assert foreign(ours, team_id=team, enterprise_id=enterprise, app_id=None) is not None
    assert foreign(ours, team_id=None, enterprise_id=None, app_id=None) is not None


def test_what_auth_test_did_not_name_is_not_compared() -> None:
    assert foreign(Ours(app_id="A1"), team_id=None, enterprise_id=None, app_id="A1") is None
    assert foreign(Ours(team_id="T1"), team_id="T1", enterprise_id=None, app_id=None) is None
    # A workspace of an organisation, installed in that workspace alone: the workspace decides.
    ours = Ours(team_id="T1", enterprise_id="E1", app_id="A1")
    assert foreign(ours, team_id="T1", enterprise_id=None, app_id="A1") is None
    assert foreign(ours, team_id="T1", enterprise_id="E2", app_id="A1") is not None


@given(team=_ids, other=_ids, app=_ids)
def test_another_team_or_app_is_foreign(team: str, other: str, app: str) -> None:
    ours = Ours(team_id=team, app_id=app)
    if other != team:
        assert foreign(ours, team_id=other, enterprise_id=None, app_id=app) is not None
    if other != app:
        assert foreign(ours, team_id=team, enterprise_id=None, app_id=other) is not None


def test_an_org_wide_install_compares_the_organisation() -> None:
    ours = Ours(team_id="T1", enterprise_id="E1", app_id="A1", enterprise_install=True)
    assert foreign(ours, team_id="T2", enterprise_id="E1", app_id="A1") is None
    assert foreign(ours, team_id="T2", enterprise_id="E2", app_id="A1") is not None
    # Naming no organisation is no way around the comparison, from another workspace or from ours.
    assert foreign(ours, team_id="T2", enterprise_id=None, app_id="A1") is not None
    assert foreign(ours, team_id="T1", enterprise_id=None, app_id="A1") is not None
    assert foreign(ours, team_id=None, enterprise_id=None, app_id="A1") is not None
    assert Ours.from_auth_test({"team_id": "T1", "is_enterprise_install": True, "app_id": 5}) == Ours(
        team_id="T1", enterprise_install=True
    )


def test_may_act_examples() -> None:
    links = {"ann": "UANN"}
    assert may_act("UEVE", agent_links={})  # no links: every member
    assert may_act("UANN", agent_links=links)  # linked
    assert not may_act("UEVE", agent_links=links)  # not linked, nothing looked up
    assert not may_act("UEVE", agent_links=links, user_agent_id=None, assigned_agent_id=None)
    assert not may_act("UEVE", agent_links=links, user_agent_id=None, assigned_agent_id="carl")
    assert not may_act("UCARL", agent_links=links, user_agent_id="carl", assigned_agent_id=None)
    assert not may_act("UCARL", agent_links=links, user_agent_id="carl", assigned_agent_id="dora")
    assert may_act("UCARL", agent_links=links, user_agent_id="carl", assigned_agent_id="carl")
    assert not may_act("ann", agent_links=links)  # an agent id is not a Slack user id


_links = st.dictionaries(st.text(max_size=4), _ids, max_size=4)
_agent = st.none() | st.text(max_size=4)


@given(user=_ids, links=_links, user_agent=_agent, assigned=_agent)
def test_may_act_properties(user: str, links: dict[str, str], user_agent: str | None, assigned: str | None) -> None:
    # Without links everyone may, and a linked user always may, whatever the look-ups found.
    assert may_act(user, agent_links={}, user_agent_id=user_agent, assigned_agent_id=assigned)
    linked = {**links, "someone": user}
    assert may_act(user, agent_links=linked, user_agent_id=user_agent, assigned_agent_id=assigned)
    if links and user not in links.values():
        # An unlinked user matched to no agent never may; matched to the assigned agent, may; to another, not.
        assert not may_act(user, agent_links=links, user_agent_id=None, assigned_agent_id=assigned)
        if assigned is not None:
            assert may_act(user, agent_links=links, user_agent_id=assigned, assigned_agent_id=assigned)
            assert not may_act(user, agent_links=links, user_agent_id=assigned + "x", assigned_agent_id=assigned)


_ts = st.from_regex(r"[0-9]{3}\.[0-9]{2}", fullmatch=True)


@given(value=st.text(max_size=5), claimed=st.text(max_size=5), channel=_ids, ts=_ts, other_ts=_ts)
def test_a_card_binds_its_own_value(value: str, claimed: str, channel: str, ts: str, other_ts: str) -> None:
    notice = {"conversation_id": value, "link": "user:u"}
    assert card_matches(value, channel_id=channel, message_ts=ts, notice=notice, link=None)
    assert card_matches(claimed, channel_id=channel, message_ts=ts, notice=notice, link=None) == (claimed == value)
    link = {"notice_channel": channel, "notice_ts": ts}
    assert card_matches(claimed, channel_id=channel, message_ts=ts, notice=None, link=link)
    assert card_matches(claimed, channel_id=channel, message_ts=other_ts, notice=None, link=link) == (other_ts == ts)
    assert not card_matches(value, channel_id=channel, message_ts=None, notice=notice, link=link)
    assert not card_matches(value, channel_id=channel, message_ts=ts, notice=None, link=None)
