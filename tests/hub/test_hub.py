from __future__ import annotations

import pytest

from norbit_connectors import Agent, AgentReply, Conversation, Delivery, Message, UsageError, User
from norbit_connectors._events import AgentMessage, Archived, CustomerMessage, Notified, TakeOver
from norbit_connectors._models import converter
from norbit_connectors.hub import Hub
from norbit_connectors.store import MemoryStore

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio

USER = User(id="u1", name="Zoë Smith", email="zoe@example.com")


def conv(cid: str = "c1", **kw: object) -> Conversation:
    return Conversation(id=cid, user=USER, **kw)  # type: ignore[arg-type]


async def test_messages_are_delivered_in_order_per_conversation() -> None:
    rec = RecordingConnector()
    async with Hub(store=MemoryStore(), connectors=[rec]) as hub:
        for i in range(50):
            await hub.customer_message(conv("a"), Message(id=f"a{i}", text=f"a{i}"))
            await hub.customer_message(conv("b"), Message(id=f"b{i}", text=f"b{i}"))
        await hub.wait_idle()
    texts = rec.texts()
    assert [t for t in texts if t.startswith("a")] == [f"a{i}" for i in range(50)]
    assert [t for t in texts if t.startswith("b")] == [f"b{i}" for i in range(50)]


async def test_same_message_id_is_accepted_once() -> None:
    rec = RecordingConnector()
    async with Hub(connectors=[rec]) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="hello"))
        await hub.customer_message(conv(), Message(id="m1", text="hello"))
        await hub.wait_idle()
        assert len(await hub.store.transcript("c1")) == 1
    assert rec.texts() == ["hello"]


async def test_transient_failures_and_rate_limits_are_retried_in_order() -> None:
    rec = RecordingConnector(fail_first=2, rate_limit_first=2)
    async with Hub(connectors=[rec], retry_base=0.01) as hub:
        for i in range(5):
            await hub.customer_message(conv(), Message(id=str(i), text=str(i)))
        await hub.wait_idle()
    assert rec.texts() == ["0", "1", "2", "3", "4"]
    assert rec.attempts == 9


async def test_bot_conversation_is_held_until_takeover_then_replayed_in_order() -> None:
    rec = RecordingConnector()
    c = conv(bot_active=True)
    agent = Agent(id="a1", name="Ann")
    async with Hub(connectors=[rec], agents=[agent]) as hub:
        await hub.customer_message(c, Message(id="1", text="hi"))
        await hub.bot_message(c, Message(id="2", text="I am a bot"))
        await hub.customer_message(c, Message(id="3", text="human please"))
        await hub.wait_idle()
        assert rec.events == []
        await hub.start_human_takeover(c)
        await hub.start_human_takeover(c)  # a second takeover changes nothing
        await hub.customer_message(c, Message(id="4", text="thanks"))
        await hub.agent_message(c, Message(id="5", text="hello from Ann"), agent)
        await hub.wait_idle()
    assert rec.texts() == ["TakeOver", "hi", "I am a bot", "human please", "thanks", "hello from Ann"]
    assert isinstance(rec.events[0], TakeOver)
    assert all(getattr(e, "replay", False) for e in rec.events[1:4])
    assert not any(getattr(e, "replay", False) for e in rec.events[4:])
    assert isinstance(rec.events[-1], AgentMessage) and rec.events[-1].agent == agent


async def test_archive_and_reopen() -> None:
    rec = RecordingConnector()
    async with Hub(connectors=[rec]) as hub:
        with pytest.raises(UsageError, match="unknown conversation"):
            await hub.archive("nope")
        await hub.customer_message(conv(), Message(id="1", text="hi"))
        await hub.archive("c1")
        await hub.archive("c1")  # archiving twice archives once
        await hub.customer_message(conv(), Message(id="2", text="back again"))
        await hub.wait_idle()
        state = await hub.conversation("c1")
    assert [type(e) for e in rec.events] == [CustomerMessage, Archived, CustomerMessage]
    last = rec.events[-1]
    assert isinstance(last, CustomerMessage) and last.reopened
    assert state is not None and state.status == "open" and state.epoch == 1


async def test_agent_reply_reaches_host_and_email_notice_goes_back() -> None:
    rec = RecordingConnector()
    received: list[AgentReply] = []

    async def deliver(reply: AgentReply) -> Delivery:
        received.append(reply)
        return Delivery(notified_by={"email", "push"})

    async with Hub(connectors=[rec], on_agent_reply=deliver) as hub:
        await hub.customer_message(conv(), Message(id="1", text="hi"))
        reply = AgentReply(conversation_id="c1", message=Message(id="s1", text="hello"), agent=None, slack_user_id="U1")
        job = hub._context.hub_job("agent_reply", "c1", {"reply": converter.unstructure(reply), "origin": "rec"})
        assert await hub._context.accept_inbound("rec", "Ev1", [job])
        assert not await hub._context.accept_inbound("rec", "Ev1", [job])  # a retry of the same event
        await hub.wait_idle()
        transcript = await hub.store.transcript("c1")
    assert received == [reply]
    assert isinstance(rec.events[-1], Notified) and rec.events[-1].notified_by == frozenset({"email"})
    assert [e.role for e in transcript] == ["customer", "agent"]


async def test_calls_outside_the_hub_block_fail_clearly() -> None:
    hub = Hub()
    with pytest.raises(UsageError, match="async with hub"):
        await hub.customer_message(conv(), Message(id="1", text="x"))
