"""Fault injection against the Slack emulator: rate limits, server errors, connection resets and latency.

Random faults use 0.2 s of latency where the specification of a slow Slack says 5 s: every latency fault is in
the critical path of a worker, and a few hundred of them at 5 s would make the suite take minutes without testing
anything more (the code waits the same way for 0.2 s as for 5 s). The acknowledgement test keeps Slack slow
(3 s per call) for the few calls it makes, because there the length of the delay is the point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from norbit_connectors import AgentReply, Conversation, Delivery, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.store import SQLiteStore

from ._procs import expected, relayed
from .conftest import Slack

pytestmark = pytest.mark.anyio


def conversation(n: int) -> Conversation:
    return Conversation(id=f"c{n}", user=User(id=f"u{n}", name=f"Customer {n}"))


def text_of(conversation_id: str, index: int) -> Message:
    return Message(id=f"{conversation_id}-m{index}", text=f"message {index} of {conversation_id}")


async def test_thirty_percent_of_slack_calls_fail_yet_every_message_arrives_once_in_order(
    slack: Slack, tmp_path: Path
) -> None:
    connector = slack.connector()
    hub = Hub(store=SQLiteStore(tmp_path / "hub.sqlite3"), connectors=[connector], retry_base=0.01)
    conversations = [conversation(n) for n in range(8)]
    per_conversation = 8
    async with hub:
        slack.emu.faults(0.3, kinds=(429, 500, 503, "reset", "latency"), seed=2024, retry_after=1, delay=0.2)
        for index in range(per_conversation):
            for conv in conversations:
                await hub.customer_message(conv, text_of(conv.id, index))
        await hub.wait_idle()
        slack.emu.clear_faults()
        assert await hub.dead_letters() == []
        channels = {c.id: await connector.channel_for(c.id) for c in conversations}
    faults = [call.fault for call in slack.emu.calls if call.fault]
    assert {"429", "500", "503", "reset"} <= set(faults)  # every kind really happened (latency is not recorded)
    assert relayed(slack.emu) == expected([c.id for c in conversations], per_conversation)
    assert len(set(channels.values())) == len(conversations) and None not in channels.values()
    notices = [m for m in slack.emu.messages(slack.main) if m.get("blocks")]
    assert len(notices) == len(conversations)  # one notice card per channel


class Host:
    def __init__(self) -> None:
        self.replies: list[AgentReply] = []

    async def on_agent_reply(self, reply: AgentReply) -> Delivery | None:
        self.replies.append(reply)
        return None


async def test_slack_event_is_acknowledged_without_waiting_for_a_slow_slack(slack: Slack) -> None:
    host = Host()
    connector = slack.connector()
    hub = Hub(connectors=[connector], retry_base=0.01, on_agent_reply=host.on_agent_reply)
    emu = slack.emu
    async with hub:
        await hub.customer_message(conversation(1), text_of("c1", 0))
        await hub.wait_idle()
        channel = await connector.channel_for("c1")
        assert channel is not None
        emu.join(channel, slack.carl)
        # Carl is linked to no agent: turning his message into a reply needs users.info from Slack.
        event = emu.post_as_user(slack.carl, channel, "On it")
        emu.fail_next("*", "latency", times=50, delay=3.0)
        calls = len(emu.calls)
        response = await event.deliver(connector.handle_http)
        again = await event.retry(1).deliver(connector.handle_http)
        # Acknowledged, durably queued, and nothing of the work it causes has happened yet: the ack did not
        # wait for Slack (each of whose calls now takes 3 s).
        assert (response.status, again.status) == (200, 200)
        assert host.replies == []
        assert await hub.store.pending_jobs() == 1
        assert len(emu.calls) == calls
        await hub.wait_idle()
    assert [r.message.text for r in host.replies] == ["On it"]
    assert [c.method for c in emu.calls[calls:]] == ["users.info"]


@pytest.mark.parametrize("lost", ["reset", 500])
async def test_a_post_whose_response_is_lost_is_not_posted_twice(slack: Slack, lost: str | int) -> None:
    connector = slack.connector()
    hub = Hub(connectors=[connector], retry_base=0.01)
    async with hub:
        await hub.customer_message(conversation(1), text_of("c1", 0))
        await hub.wait_idle()
        # Slack posts the message, and then the answer never arrives (a reset) or is an error.
        slack.emu.fail_next("chat.postMessage", lost, after=True)  # type: ignore[arg-type]
        await hub.customer_message(conversation(1), text_of("c1", 1))
        await hub.customer_message(conversation(1), text_of("c1", 2))
        await hub.wait_idle()
    assert relayed(slack.emu) == expected(["c1"], 3)
