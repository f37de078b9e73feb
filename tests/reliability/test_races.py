"""Races between workers of one hub, made deterministic with emulator latency: a slow Slack call holds one worker
in the middle of its work while another worker touches the same channel."""

from __future__ import annotations

import pytest

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub

from ._procs import relayed
from .conftest import Slack

pytestmark = pytest.mark.anyio


async def test_two_conversations_of_one_customer_starting_together_get_one_channel_and_one_notice(
    slack: Slack,
) -> None:
    connector = slack.connector()
    hub = Hub(connectors=[connector], retry_base=0.01)
    user = User(id="u1", name="Zoë")
    first, second = Conversation(id="c-a", user=user), Conversation(id="c-b", user=user)
    async with hub:
        # The first notice card takes a second to post: meanwhile the second conversation joins the channel.
        slack.emu.fail_next("chat.postMessage", "latency", delay=1.0)
        await hub.customer_message(first, Message(id="m1", text="hello from a"))
        await hub.customer_message(second, Message(id="m1", text="hello from b"))
        await hub.wait_idle()
        channels = {await connector.channel_for("c-a"), await connector.channel_for("c-b")}
    assert len(channels) == 1 and None not in channels
    assert relayed(slack.emu) == {"c-a": ["m1"], "c-b": ["m1"]}
    notices = [m for m in slack.emu.messages(slack.main) if m.get("blocks")]
    assert len(notices) == 1, [m["text"] for m in notices]
