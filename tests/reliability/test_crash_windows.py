"""Slack applied a call but its answer never came back (the connection dropped, as when the process dies between
the call and the write of its result): the calls that open a conversation must not be repeated either."""

from __future__ import annotations

import pytest

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub

from ._procs import expected, relayed
from .conftest import Slack

pytestmark = pytest.mark.anyio


CONV = Conversation(id="c1", user=User(id="u1", name="Kim"))


async def test_a_channel_created_whose_answer_is_lost_is_the_only_channel(slack: Slack) -> None:
    connector = slack.connector()
    hub = Hub(connectors=[connector], retry_base=0.01)
    async with hub:
        slack.emu.fail_next("conversations.create", "reset", after=True)
        await hub.customer_message(CONV, Message(id="c1-m0", text="hello"))
        await hub.wait_idle()
    assert relayed(slack.emu) == expected(["c1"], 1)
    created = [c["name"] for c in slack.emu.channels.values() if c["id"] != slack.main and not c["is_general"]]
    assert created == ["kim"]


async def test_a_notice_card_posted_whose_answer_is_lost_is_posted_once(slack: Slack) -> None:
    connector = slack.connector()
    hub = Hub(connectors=[connector], retry_base=0.01)
    async with hub:
        # The first chat.postMessage of a conversation is its notice card.
        slack.emu.fail_next("chat.postMessage", "reset", after=True)
        await hub.customer_message(CONV, Message(id="c1-m0", text="hello"))
        await hub.wait_idle()
    assert relayed(slack.emu) == expected(["c1"], 1)
    notices = [m for m in slack.emu.messages(slack.main) if m.get("blocks")]
    assert len(notices) == 1
