"""Ids: integer ids (database keys) work end to end; ids the stores or Slack cannot carry are refused at the call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from norbit_connectors import (
    Agent,
    AgentReply,
    Conversation,
    DeadLetter,
    Department,
    Message,
    UsageError,
    User,
)
from norbit_connectors._models import converter
from norbit_connectors.hub import Hub
from norbit_connectors.routing import Routing
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.slack._blocks import JOIN_ACTION_ID
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    with SlackEmulator(rate_limits="off") as emu:
        yield emu


async def test_integer_ids_reach_slack_and_the_agents_reply_reaches_the_host(emulator: SlackEmulator) -> None:
    ann = emulator.add_user("ann", email="ann@support.example", real_name="Ann Agent")
    main = emulator.add_channel("support", members=[emulator.bot_user_id, ann])
    slack = SlackConnector(
        SlackConfig(
            bot_token=emulator.bot_token,
            signing_secret=emulator.signing_secret,
            main_channel=main,
            agent_links={"7": ann},
            base_url=emulator.base_url,
        ),
        limiter=SlackLimiter(enabled=False),
    )
    replies: list[AgentReply] = []
    archived: list[str] = []
    dead: list[DeadLetter] = []

    async def on_agent_reply(reply: AgentReply) -> None:
        replies.append(reply)

    async def on_archive(conversation_id: str) -> None:
        archived.append(conversation_id)

    async def on_dead_letter(letter: DeadLetter) -> None:
        dead.append(letter)

    conversation = Conversation(id=42, user=User(id=1001, name="Zoë Smith"), department_id=3)
    hub = Hub(
        connectors=[slack],
        agents=[Agent(id=7, name="Ann", department_ids={3})],
        departments=[Department(id=3, name="Sales")],
        on_agent_reply=on_agent_reply,
        on_archive=on_archive,
        on_dead_letter=on_dead_letter,
    )
    async with hub:
        await hub.customer_message(conversation, Message(id=1, text="Hello?"))
        await hub.wait_idle()
        channel = await slack.channel_for("42")
        assert channel is not None
        emulator.join(channel, ann)
        event = emulator.post_as_user(ann, channel, "Hi, Ann here")
        assert (await event.deliver(slack.handle_http)).status == 200
        await hub.wait_idle()
        assert (await hub.conversation(42)) == (await hub.conversation("42"))
        await hub.archive(42)
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        state = await hub.conversation("42")
    assert [(r.conversation_id, r.message.text, r.agent and r.agent.id) for r in replies] == [
        ("42", "Hi, Ann here", "7")
    ]
    assert state is not None and state.status == "archived"
    assert dead == []


async def test_routing_calls_take_integer_ids() -> None:
    rec = RecordingConnector()
    hub = Hub(connectors=[rec], agents=[Agent(id=7, name="Ann")], routing=Routing(mode="manual"))
    async with hub:
        await hub.set_agent_online(7, True)
        await hub.customer_message(Conversation(id=42, user=User(id=1, name="Zoë")), Message(id=1, text="hi"))
        await hub.wait_idle()
        claimed = await hub.claim(42, 7)
        assert (claimed.conversation_id, claimed.agent_id) == ("42", "7")
        assert await hub.assignment(42) == await hub.assignment("42") == claimed


async def test_a_reply_for_a_conversation_the_hub_does_not_know_is_a_dead_letter() -> None:
    rec = RecordingConnector()
    dead: list[DeadLetter] = []
    replies: list[AgentReply] = []

    async def on_agent_reply(reply: AgentReply) -> None:
        replies.append(reply)

    async def on_dead_letter(letter: DeadLetter) -> None:
        dead.append(letter)

    reply = AgentReply(conversation_id="ghost", message=Message(id="r1", text="hello?"), agent=None, slack_user_id="U1")
    async with Hub(connectors=[rec], on_agent_reply=on_agent_reply, on_dead_letter=on_dead_letter) as hub:
        job = rec.context.hub_job("agent_reply", "ghost", {"reply": converter.unstructure(reply), "origin": "rec"})
        assert await rec.context.accept_inbound("rec", "e1", [job])
        await hub.wait_idle()
        letters = await hub.dead_letters()
    assert replies == []
    assert len(letters) == 1
    (letter,) = letters
    assert (letter.kind, letter.conversation_id) == ("agent_reply", "ghost")
    assert "unknown conversation" in letter.reason
    assert [d.id for d in dead] == [letter.id]


# -- bounds at the call ----------------------------------------------------------------------------------

LONG = "x" * 129


def _bad_calls() -> list[tuple[str, Conversation, Message, str]]:
    user = User(id="u1", name="Zoë")
    ok = Conversation(id="c1", user=user)
    msg = Message(id="m1", text="hi")
    return [
        ("Conversation.id", Conversation(id=LONG, user=user), msg, "128"),
        ("Conversation.id", Conversation(id="a\x00b", user=user), msg, "control"),
        ("Conversation.id", Conversation(id="a\ud800b", user=user), msg, "surrogate"),
        ("Conversation.id", Conversation(id="a\nb", user=user), msg, "control"),
        ("User.id", Conversation(id="c1", user=User(id=LONG, name="Zoë")), msg, "128"),
        ("Conversation.department_id", Conversation(id="c1", user=user, department_id=LONG), msg, "128"),
        ("Conversation.agent_id", Conversation(id="c1", user=user, agent_id="a\x7f"), msg, "control"),
        ("Message.id", ok, Message(id=LONG, text="hi"), "128"),
        ("User.name", Conversation(id="c1", user=User(id="u1", name="n" * 1001)), msg, "1000"),
        ("User.email", Conversation(id="c1", user=User(id="u1", name="Z", email="e" * 321)), msg, "320"),
        (
            "User.details",
            Conversation(id="c1", user=User(id="u1", name="Z", details={f"k{i}": "v" for i in range(51)})),
            msg,
            "50",
        ),
        (
            "User.details",
            Conversation(id="c1", user=User(id="u1", name="Z", details={"location": "v" * 1001})),
            msg,
            "1000",
        ),
        (
            "User.details",
            Conversation(id="c1", user=User(id="u1", name="Z", details={"k" * 101: "v"})),
            msg,
            "100",
        ),
    ]


@pytest.mark.parametrize(("field", "conversation", "message", "limit"), _bad_calls())
async def test_ids_and_user_fields_out_of_bounds_are_refused_at_the_call(
    field: str, conversation: Conversation, message: Message, limit: str
) -> None:
    rec = RecordingConnector()
    async with Hub(store=MemoryStore(), connectors=[rec]) as hub:
        for call in (
            lambda: hub.customer_message(conversation, message),
            lambda: hub.bot_message(conversation, message),
            lambda: hub.agent_message(conversation, message, None),
        ):
            with pytest.raises(UsageError) as caught:
                await call()
            assert field in str(caught.value)
            assert limit in str(caught.value)
        assert await hub.store.pending_jobs() == 0
        assert await hub.store.scan("conv") == []
        # The hub goes on working.
        await hub.customer_message(Conversation(id="c1", user=User(id="u1", name="Zoë")), Message(id="ok", text="ok"))
        await hub.wait_idle()
    assert rec.texts() == ["ok"]


async def test_the_other_calls_bound_their_ids_too() -> None:
    rec = RecordingConnector()
    user = User(id="u1", name="Zoë")
    hub = Hub(connectors=[rec], agents=[Agent(id="a1", name="Ann")], routing=Routing(mode="manual"))
    async with hub:
        with pytest.raises(UsageError, match=r"Conversation\.id.*128"):
            await hub.start_human_takeover(Conversation(id=LONG, user=user, bot_active=True))
        with pytest.raises(UsageError, match=r"conversation_id.*128"):
            await hub.archive(LONG)
        with pytest.raises(UsageError, match=r"conversation_id.*control"):
            await hub.claim("c\x00", "a1")
        with pytest.raises(UsageError, match=r"agent_id.*128"):
            await hub.set_agent_online(LONG, True)
        with pytest.raises(UsageError, match=r"^conversation_id must be at most 128"):
            await hub.archive(10**5000)  # more digits than Python prints
        with pytest.raises(UsageError, match=r"^agent_id must be at most 128"):
            await hub.claim("c1", -(10**5000))
        with pytest.raises(UsageError, match=r"conversation_id.*surrogate"):
            await hub.assignment("\udfff")
        with pytest.raises(UsageError, match=r"Agent\.id.*128"):
            await hub.agent_message(
                Conversation(id="c1", user=user), Message(id="m", text="t"), Agent(id=LONG, name="A")
            )
        assert await hub.store.pending_jobs() == 0


def test_agents_and_departments_with_unusable_ids_are_refused_at_hub() -> None:
    from norbit_connectors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"Agent\.id.*128"):
        Hub(agents=[Agent(id=LONG, name="A")])
    with pytest.raises(ConfigurationError, match=r"Department\.id.*control"):
        Hub(departments=[Department(id="d\x00", name="D")])


async def test_the_longest_ids_allowed_reach_slack_in_the_card_and_the_metadata(emulator: SlackEmulator) -> None:
    main = emulator.add_channel("support", members=[emulator.bot_user_id])
    slack = SlackConnector(
        SlackConfig(
            bot_token=emulator.bot_token,
            signing_secret=emulator.signing_secret,
            main_channel=main,
            base_url=emulator.base_url,
        ),
        limiter=SlackLimiter(enabled=False),
    )
    longest = "💬" * 128
    async with Hub(connectors=[slack]) as hub:
        conversation = Conversation(id=longest, user=User(id=longest, name="Zoë"))
        await hub.customer_message(conversation, Message(id=longest, text="Hello?"))
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        channel = await slack.channel_for(longest)
    assert channel is not None
    # The notice card in the main channel: its Join button carries the conversation id whole.
    (notice,) = [m for m in emulator.messages(main) if m.get("blocks")]
    joins = [
        element
        for block in notice["blocks"]
        if block.get("type") == "actions"
        for element in block["elements"]
        if element.get("action_id") == JOIN_ACTION_ID
    ]
    assert [j["value"] for j in joins] == [longest]
    # The customer's message in the conversation's channel: its metadata names the conversation and the message.
    (relayed,) = [m for m in emulator.messages(channel) if m.get("text") == "Hello?"]
    payload = relayed["metadata"]["event_payload"]
    assert (payload["conversation_id"], payload["message_id"]) == (longest, longest)
