from __future__ import annotations

import pytest

from norbit_connectors import Agent, Attachment, Conversation, Department, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConnector, SlackLimiter
from norbit_connectors.slack._transport import INLINE_ATTEMPTS
from norbit_connectors.store import MemoryStore

from .conftest import Workspace

pytestmark = pytest.mark.anyio

AGENTS = [
    Agent(id="ann", name="Ann", email="ann@support.example", department_ids=frozenset({"sales"})),
    Agent(id="bob", name="Bob", email="bob@support.example"),
]
DEPARTMENTS = [Department(id="sales", name="Sales")]


def hub_for(ws: Workspace, **config: object) -> tuple[Hub, SlackConnector]:
    # The emulator runs without rate limits here, so our own pacing is off too.
    slack = SlackConnector(ws.config(**config), limiter=SlackLimiter(enabled=False))
    return Hub(store=MemoryStore(), connectors=[slack], agents=AGENTS, departments=DEPARTMENTS), slack


async def test_first_message_opens_channel_and_posts_notice(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    user = User(id="u1", name="Zoë Smith", email="zoe@example.com", details={"location": "Oslo", "plan": "gold"})
    conv = Conversation(id="c1", user=user)
    async with hub:
        await hub.customer_message(conv, Message(id="m1", text="Hello, I need help"))
        await hub.wait_idle()
        channel_id = await slack.channel_for("c1")
    emu = workspace.emu
    assert channel_id is not None
    channel = emu.channels[channel_id]
    assert channel["name"] == "zoe-smith"
    assert channel["is_private"] is True
    assert set(channel["members"]) == {emu.bot_user_id}
    posted = emu.messages(channel_id)
    assert [m["text"] for m in posted] == ["Hello, I need help"]
    assert posted[0]["author"] == "Zoë Smith"
    assert posted[0]["metadata"]["event_payload"] == {"conversation_id": "c1", "message_id": "m1", "part": 0}
    notice = emu.messages(workspace.main)[-1]
    rendered = str(notice["blocks"])
    assert "Hello, I need help" in rendered and "Oslo" in rendered and "zoe@example.com" in rendered
    assert "gold" not in rendered  # only the configured user_details
    actions = next(b for b in notice["blocks"] if b["type"] == "actions")
    assert actions["elements"][0]["action_id"] == JOIN_ACTION_ID


async def test_two_users_with_the_same_name_get_two_channels(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    async with hub:
        for n in (1, 2):
            conv = Conversation(id=f"c{n}", user=User(id=f"u{n}", name="Zoë Smith"))
            await hub.customer_message(conv, Message(id="m", text=f"hi {n}"))
        await hub.wait_idle()
        channels = [await slack.channel_for("c1"), await slack.channel_for("c2")]
    names = sorted(workspace.emu.channels[c]["name"] for c in channels if c)
    assert names == ["zoe-smith", "zoe-smith-2"]


async def test_customer_cannot_ping_anyone(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    conv = Conversation(id="c1", user=User(id="u1", name="Mallory"))
    async with hub:
        await hub.customer_message(conv, Message(id="m1", text="<!channel> <!here> <@U0> & co"))
        await hub.wait_idle()
        channel = await slack.channel_for("c1")
    assert channel is not None
    text = workspace.emu.messages(channel)[0]["text"]
    assert "<" not in text and ">" not in text
    assert text == "&lt;!channel&gt; &lt;!here&gt; &lt;@U0&gt; &amp; co"


async def test_department_notice_and_agent_linking(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace, agent_linking=True)
    async with hub:
        sales = Conversation(id="c1", user=User(id="u1", name="Sam"), department_id="sales")
        assigned = Conversation(id="c2", user=User(id="u2", name="Ada"), agent_id="bob")
        anyone = Conversation(id="c3", user=User(id="u3", name="Eve"))
        for conv in (sales, assigned, anyone):
            await hub.customer_message(conv, Message(id="m1", text="hi"))
        await hub.wait_idle()
        channels = {c: await slack.channel_for(c) for c in ("c1", "c2", "c3")}
    emu = workspace.emu
    members = {c: set(emu.channels[ch]["members"]) - {emu.bot_user_id} for c, ch in channels.items() if ch}
    # ann serves sales; bob serves every department (no department_ids)
    assert members == {
        "c1": {workspace.ann, workspace.bob},
        "c2": {workspace.bob},
        "c3": {workspace.ann, workspace.bob},
    }
    assert "Sam" in str(emu.messages(workspace.sales)[-1]["blocks"])


async def test_takeover_relays_the_transcript_in_order(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    conv = Conversation(id="c1", user=User(id="u1", name="Tom"), bot_active=True)
    async with hub:
        for i in range(300):
            if i % 2:
                await hub.bot_message(conv, Message(id=f"m{i}", text=f"bot {i}"))
            else:
                await hub.customer_message(conv, Message(id=f"m{i}", text=f"customer {i}"))
        await hub.wait_idle()
        assert await slack.channel_for("c1") is None  # nothing reaches Slack before takeover
        await hub.start_human_takeover(conv)
        await hub.customer_message(conv, Message(id="live", text="live"))
        await hub.wait_idle()
        channel = await slack.channel_for("c1")
    assert channel is not None
    texts = [m["text"] for m in workspace.emu.messages(channel)]
    expected = [f"bot {i}" if i % 2 else f"customer {i}" for i in range(300)] + ["live"]
    assert texts == expected


async def test_archive_and_reopen_without_user_token_continues_in_new_channel(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    conv = Conversation(id="c1", user=User(id="u1", name="Kim"))
    async with hub:
        await hub.customer_message(conv, Message(id="m1", text="first"))
        await hub.wait_idle()
        old = await slack.channel_for("c1")
        await hub.archive("c1")
        await hub.wait_idle()
        assert old is not None and workspace.emu.channels[old]["is_archived"]
        await hub.customer_message(conv, Message(id="m2", text="again"))
        await hub.wait_idle()
        new = await slack.channel_for("c1")
    assert new is not None and new != old
    emu = workspace.emu
    assert emu.channels[new]["name"] == "kim-2"
    texts = [m["text"] for m in emu.messages(new)]
    assert texts == [f"Continued from <#{old}>", "again"]
    notices = [m for m in emu.messages(workspace.main) if m.get("blocks")]
    assert len(notices) == 2


async def test_reopen_with_user_token_unarchives(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace, user_token=workspace.emu.user_token)
    conv = Conversation(id="c1", user=User(id="u1", name="Kim"))
    async with hub:
        await hub.customer_message(conv, Message(id="m1", text="first"))
        await hub.wait_idle()
        old = await slack.channel_for("c1")
        assert old is not None
        assert workspace.emu.installer_user_id in workspace.emu.channels[old]["members"]
        await hub.archive("c1")
        await hub.wait_idle()
        await hub.customer_message(conv, Message(id="m2", text="again"))
        await hub.wait_idle()
        assert await slack.channel_for("c1") == old
    assert not workspace.emu.channels[old]["is_archived"]
    assert [m["text"] for m in workspace.emu.messages(old)] == ["first", "again"]


async def test_attachments_and_long_text(workspace: Workspace) -> None:
    hub, slack = hub_for(workspace)
    conv = Conversation(id="c1", user=User(id="u1", name="Lee"))
    long_text = ("word " * 2000).strip()
    message = Message(
        id="m1",
        text=long_text,
        attachments=(
            Attachment(name="photo.png", content=b"\x89PNG...", content_type="image/png"),
            Attachment(name="invoice", url="https://example.com/i.pdf"),
        ),
    )
    async with hub:
        await hub.customer_message(conv, message)
        await hub.wait_idle()
        channel = await slack.channel_for("c1")
    assert channel is not None
    posted = workspace.emu.messages(channel)
    texts = [m["text"] for m in posted if m["text"]]
    assert all(len(t) <= 4000 for t in texts)
    joined = " ".join(texts)
    assert joined.startswith("word word") and "<https://example.com/i.pdf|invoice>" in joined
    files = [f for m in posted for f in (m.get("files") or [])]
    assert len(files) == 1
    assert workspace.emu.file_content(files[0]["id"]) == b"\x89PNG..."


async def test_an_immediate_retry_does_not_post_again_what_the_first_try_posted(workspace: Workspace) -> None:
    # A message in several parts: the first part is posted, then Slack refuses the next one with 429s until
    # the transport gives up. The hub tries the job again at once, under the same lease; that second try must
    # find the part already posted instead of posting it again.
    hub, slack = hub_for(workspace)
    conv = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))
    long_text = " ".join(f"word{i}" for i in range(1200))  # more than one Slack message
    async with hub:
        await hub.customer_message(conv, Message(id="m1", text="hello"))
        await hub.wait_idle()
        workspace.emu.fail_next("chat.postMessage", "latency", delay=0)  # the first part goes through
        workspace.emu.fail_next("chat.postMessage", 429, times=INLINE_ATTEMPTS)
        await hub.customer_message(conv, Message(id="m2", text=long_text))
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        channel = await slack.channel_for("c1")
    assert channel is not None
    posted = workspace.emu.messages(channel)
    assert [m["metadata"]["event_payload"]["message_id"] for m in posted] == ["m1"] + ["m2"] * (len(posted) - 1)
    assert [m["metadata"]["event_payload"]["part"] for m in posted[1:]] == list(range(len(posted) - 1))
    assert len(posted) > 2
    assert [c.status for c in workspace.emu.calls_to("chat.postMessage")].count(429) == INLINE_ATTEMPTS
