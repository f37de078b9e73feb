"""Agents answer from Slack: events, /archive, Join, and bad requests, end to end through the emulator."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from norbit_connectors import Agent, AgentReply, Conversation, Delivery, Department, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConnector, SlackLimiter
from norbit_connectors.store import Batch, CommitResult, MemoryStore, Put, SQLiteStore, Store

from .conftest import Workspace

pytestmark = pytest.mark.anyio

AGENTS = [
    Agent(id="ann", name="Ann", email="ann@support.example"),
    Agent(id="carl", name="Carl", email="carl@support.example"),
]
CONV = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))


class Host:
    """What a host application records from the hub's callbacks."""

    def __init__(self, delivery: Delivery | None = None) -> None:
        self.replies: list[AgentReply] = []
        self.archived: list[str] = []
        self.edits: list[AgentReply] = []
        self.deletes: list[tuple[str, str]] = []
        self._delivery = delivery

    async def on_agent_reply(self, reply: AgentReply) -> Delivery | None:
        self.replies.append(reply)
        return self._delivery

    async def on_archive(self, conversation_id: str) -> None:
        self.archived.append(conversation_id)

    async def on_agent_edit(self, reply: AgentReply) -> None:
        self.edits.append(reply)

    async def on_agent_delete(self, conversation_id: str, message_id: str) -> None:
        self.deletes.append((conversation_id, message_id))


def make_hub(ws: Workspace, host: Host, store: Store | None = None, **config: object) -> tuple[Hub, SlackConnector]:
    slack = SlackConnector(ws.config(**config), limiter=SlackLimiter(enabled=False))
    hub = Hub(
        store=store or MemoryStore(),
        connectors=[slack],
        agents=AGENTS,
        departments=[Department(id="sales", name="Sales")],
        on_agent_reply=host.on_agent_reply,
        on_archive=host.on_archive,
        on_agent_edit=host.on_agent_edit,
        on_agent_delete=host.on_agent_delete,
    )
    return hub, slack


async def open_channel(hub: Hub, slack: SlackConnector) -> str:
    await hub.customer_message(CONV, Message(id="m1", text="Hello?"))
    await hub.wait_idle()
    channel = await slack.channel_for(CONV.id)
    assert channel is not None
    return channel


@asynccontextmanager
async def agent_in_channel(
    ws: Workspace, host: Host, store: Store | None = None, **config: object
) -> AsyncIterator[tuple[Hub, SlackConnector, str]]:
    """A running hub whose conversation CONV has its channel, with Ann (an agent) in it."""
    hub, slack = make_hub(ws, host, store, **config)
    async with hub:
        channel = await open_channel(hub, slack)
        ws.emu.join(channel, ws.ann)
        yield hub, slack, channel


async def test_agent_answer_reaches_host_once_across_retries_and_a_restart(
    workspace: Workspace, tmp_path: Path
) -> None:
    emu = workspace.emu
    host = Host()
    path = tmp_path / "hub.sqlite3"
    async with agent_in_channel(workspace, host, SQLiteStore(path)) as (hub, slack, channel):
        event = emu.post_as_user(workspace.ann, channel, "Hi <@" + workspace.bob + ">, I'll take it :smile: &amp; more")
        response = await event.deliver(slack.handle_http)
        assert response.status == 200
        assert (await event.retry(1).deliver(slack.handle_http)).status == 200
        await hub.wait_idle()
    # A new process on the same database gets Slack's third delivery.
    hub2, slack2 = make_hub(workspace, host, SQLiteStore(path))
    async with hub2:
        assert (await event.retry(2, "http_error").deliver(slack2.handle_http)).status == 200
        await hub2.wait_idle()
        transcript = await hub2.store.transcript(CONV.id)
    assert len(host.replies) == 1
    reply = host.replies[0]
    assert reply.conversation_id == CONV.id
    assert reply.agent == AGENTS[0]  # linked through agent_links
    assert reply.slack_user_id == workspace.ann
    assert reply.message.text == "Hi @bob, I'll take it 😄 & more"  # the display name Slack shows
    assert [e.role for e in transcript] == ["customer", "agent"]


async def test_unlinked_agent_is_matched_by_email_and_files_are_fetched(workspace: Workspace) -> None:
    emu = workspace.emu
    carl = emu.add_user("carl", email="carl@support.example", real_name="Carl Agent")
    host = Host()
    hub, slack = make_hub(workspace, host, agent_links={})  # with links, only the assigned agent could write
    async with hub:
        channel = await open_channel(hub, slack)
        emu.join(channel, carl)
        event = emu.post_as_user(
            carl, channel, "here you go", files=[("guide.pdf", b"%PDF-1.4 guide", "application/pdf")]
        )
        await event.deliver(slack.handle_http)
        thread = emu.post_as_user(carl, channel, "in a thread", thread_ts=event.event["ts"])
        await thread.deliver(slack.handle_http)
        await hub.wait_idle()
    assert [r.message.text for r in host.replies] == ["here you go", "in a thread"]
    assert host.replies[0].agent == AGENTS[1]
    (attachment,) = host.replies[0].message.attachments
    assert attachment.name == "guide.pdf"
    assert attachment.content == b"%PDF-1.4 guide"
    assert attachment.content_type == "application/pdf"


async def test_our_own_posts_and_other_channels_are_ignored(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    hub, slack = make_hub(workspace, host)
    async with hub:
        await open_channel(hub, slack)
        # Messages in a channel that is not linked (the main channel) are no replies.
        await emu.post_as_user(workspace.ann, workspace.main, "chatting in #support").deliver(slack.handle_http)
        await hub.wait_idle()
    assert host.replies == []


async def test_email_delivery_is_noted_in_the_channel(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host(Delivery(notified_by={"email", "sms"}))
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        await emu.post_as_user(workspace.ann, channel, "answer").deliver(slack.handle_http)
        await hub.wait_idle()
    texts = [m["text"] for m in emu.messages(channel)]
    assert texts[-1] == "The user has been notified by email and text message."


async def test_archive_command_archives_both_sides(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        response = await emu.slash_command("/archive", workspace.ann, channel).deliver(slack.handle_http)
        assert response.status == 200
        assert json.loads(response.body) == {
            "response_type": "ephemeral",
            "text": "Archiving this conversation and its channel.",
        }
        await hub.wait_idle()
        state = await hub.conversation(CONV.id)
        # An archive echo from Slack does not call the host a second time.
        await emu.event_request(
            {"type": "group_archive", "channel": channel, "user": workspace.ann, "event_ts": "1.0"}
        ).deliver(slack.handle_http)
        await hub.wait_idle()
    assert emu.channels[channel]["is_archived"]
    assert host.archived == [CONV.id]
    assert state is not None and state.status == "archived"


async def test_archive_command_in_an_unlinked_channel(workspace: Workspace) -> None:
    host = Host()
    hub, slack = make_hub(workspace, host)
    async with hub:
        response = await workspace.emu.slash_command("/archive", workspace.ann, workspace.main).deliver(
            slack.handle_http
        )
        await hub.wait_idle()
    assert response.status == 200
    assert "not linked" in json.loads(response.body)["text"]
    assert host.archived == []


async def test_channel_archived_in_slack_archives_the_conversation(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        await emu.archive_as_user(workspace.ann, channel).deliver(slack.handle_http)
        await hub.wait_idle()
        state = await hub.conversation(CONV.id)
    assert host.archived == [CONV.id]
    assert state is not None and state.status == "archived"


async def test_host_archive_does_not_call_back_the_host(workspace: Workspace) -> None:
    host = Host()
    hub, slack = make_hub(workspace, host)
    async with hub:
        await open_channel(hub, slack)
        await hub.archive(CONV.id)
        await hub.wait_idle()
    assert host.archived == []


async def test_join_button_invites_and_updates_the_card(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    hub, slack = make_hub(workspace, host)
    async with hub:
        channel = await open_channel(hub, slack)
        card = [m for m in emu.messages(workspace.main) if m.get("blocks")][-1]
        click = emu.block_action(workspace.ann, workspace.main, card["ts"], JOIN_ACTION_ID, value=CONV.id)
        assert (await click.deliver(slack.handle_http)).status == 200
        await click.deliver(slack.handle_http)  # a double click changes nothing more
        url_click = emu.block_action(workspace.bob, workspace.main, card["ts"], "norbit_open", url="https://x")
        assert (await url_click.deliver(slack.handle_http)).status == 200
        await hub.wait_idle()
    assert workspace.ann in emu.channels[channel]["members"]
    assert workspace.bob not in emu.channels[channel]["members"]
    updated = next(m for m in emu.messages(workspace.main) if m["ts"] == card["ts"])
    assert f"Joined by <@{workspace.ann}>" in json.dumps(updated["blocks"])


async def test_edits_and_deletes_reach_the_host(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        posted = emu.post_as_user(workspace.ann, channel, "frist")
        await posted.deliver(slack.handle_http)
        ts = posted.event["ts"]
        await emu.edit_as_user(workspace.ann, channel, ts, "first").deliver(slack.handle_http)
        await emu.delete_as_user(workspace.ann, channel, ts).deliver(slack.handle_http)
        await hub.wait_idle()
    message_id = f"slack:{channel}:{ts}"
    assert [r.message.id for r in host.replies] == [message_id]
    assert [(e.message.id, e.message.text) for e in host.edits] == [(message_id, "first")]
    assert host.deletes == [(CONV.id, message_id)]


async def test_bad_signatures_and_stale_requests_get_401(workspace: Workspace) -> None:
    emu = workspace.emu
    host = Host()
    async with agent_in_channel(workspace, host) as (hub, slack, channel):
        event = emu.post_as_user(workspace.ann, channel, "hello")
        forged = event.resign(secret="not-the-signing-secret")
        stale = event.resign(timestamp=int(time.time()) - 301)
        assert (await forged.deliver(slack.handle_http)).status == 401
        assert (await stale.deliver(slack.handle_http)).status == 401
        unsigned = await slack.handle_http({"Content-Type": "application/json"}, event.body)
        assert unsigned.status == 401
        await hub.wait_idle()
    assert host.replies == []


async def test_url_verification_and_malformed_bodies(workspace: Workspace) -> None:
    emu = workspace.emu
    hub, slack = make_hub(workspace, Host())
    async with hub:
        check = emu.url_verification("abc123")
        response = await check.deliver(slack.handle_http)
        assert (response.status, json.loads(response.body)) == (200, {"challenge": "abc123"})
        for body in (b"{not json", b"payload=%7Bbroken", b'{"type": "event_callback"}'):
            headers = {"Content-Type": "application/json", **emu.sign(body)}
            assert (await slack.handle_http(headers, body)).status == 400
        big = b"x" * (slack.max_body_bytes + 1)
        assert (await slack.handle_http(emu.sign(big), big)).status == 413


async def test_join_is_the_claim_in_manual_routing(workspace: Workspace) -> None:
    from norbit_connectors.routing import Routing

    emu = workspace.emu
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    agents = [*AGENTS, Agent(id="bob", name="Bob", email="bob@support.example")]
    hub = Hub(store=MemoryStore(), connectors=[slack], agents=agents, routing=Routing(mode="manual"))
    async with hub:
        channel = await open_channel(hub, slack)
        card = [m for m in emu.messages(workspace.main) if m.get("blocks")][-1]
        for who in (workspace.ann, workspace.bob):
            click = emu.block_action(who, workspace.main, card["ts"], JOIN_ACTION_ID, value=CONV.id)
            await click.deliver(slack.handle_http)
            await hub.wait_idle()
        assignment = await hub.assignment(CONV.id)
    assert assignment is not None and assignment.agent_id == "ann"
    members = emu.channels[channel]["members"]
    assert workspace.ann in members and workspace.bob not in members
    told = [m for m in emu.ephemeral_messages() if m.get("user") == workspace.bob]
    assert told and told[-1]["text"] == "Ann already has this conversation."
    updated = next(m for m in emu.messages(workspace.main) if m["ts"] == card["ts"])
    assert f"Assigned to <@{workspace.ann}>" in json.dumps(updated["blocks"])


class _InterferingStore(MemoryStore):
    """A MemoryStore where, once armed, each of the next ``times`` compare-and-swap writes of a Slack link
    document first meets another writer's change to that document (an unrelated field), as when two jobs of
    the same conversation run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.times = 0
        self.interfered = 0

    async def commit(self, batch: Batch, *, now: float) -> CommitResult:
        for put in batch.puts:
            if self.times and put.namespace == "slack.link" and put.expected_version is not None:
                current = await self.get(put.namespace, put.key)
                if current is not None and current.version == put.expected_version:
                    self.times -= 1
                    self.interfered += 1
                    touched = {**current.value, "touched": self.interfered}
                    await super().commit(
                        Batch(puts=[Put(namespace=put.namespace, key=put.key, value=touched)]), now=now
                    )
                break
        return await super().commit(batch, now=now)


async def test_join_and_assignment_survive_concurrent_writes_of_the_link(workspace: Workspace) -> None:
    from norbit_connectors.routing import Routing

    emu = workspace.emu
    store = _InterferingStore()
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    hub = Hub(store=store, connectors=[slack], agents=AGENTS, routing=Routing(mode="manual"))
    async with hub:
        await open_channel(hub, slack)
        card = [m for m in emu.messages(workspace.main) if m.get("blocks")][-1]
        store.times = 2  # the Join click's write of "joined" and the assignment's write of the card
        click = emu.block_action(workspace.ann, workspace.main, card["ts"], JOIN_ACTION_ID, value=CONV.id)
        await click.deliver(slack.handle_http)
        await hub.wait_idle()
        ref = await store.get("slack.conv", CONV.id)
        assert ref is not None
        link = await store.get("slack.link", ref.value["link"])
    assert store.interfered == 2
    assert link is not None
    assert link.value["joined"] == [workspace.ann]
    assert link.value["card"]["assigned_to"] == workspace.ann
    assert link.value["touched"] == 2
    updated = next(m for m in emu.messages(workspace.main) if m["ts"] == card["ts"])
    assert f"Assigned to <@{workspace.ann}>" in json.dumps(updated["blocks"])


@pytest.mark.parametrize("how", ["slash command", "archived in Slack"])
async def test_archive_mark_survives_a_concurrent_write_of_the_link(workspace: Workspace, how: str) -> None:
    emu = workspace.emu
    store = _InterferingStore()
    async with agent_in_channel(workspace, Host(), store) as (hub, slack, channel):
        ref = await store.get("slack.conv", CONV.id)
        assert ref is not None
        store.times = 1
        if how == "slash command":
            await emu.slash_command("/archive", workspace.ann, channel).deliver(slack.handle_http)
        else:
            await emu.archive_as_user(workspace.ann, channel).deliver(slack.handle_http)
        await hub.wait_idle()
        link = await store.get("slack.link", ref.value["link"])
    assert store.interfered == 1
    assert link is not None and link.value["archived"] is True and link.value["touched"] == 1
    assert emu.channels[channel]["is_archived"]
