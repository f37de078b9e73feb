from __future__ import annotations

import pytest

from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.exceptions import NotFound
from norbit_connectors.testing._meta import MetaEmulator

from .conftest import Clock, Workspace
from .test_conformance import messenger_config

pytestmark = pytest.mark.anyio

DAY = 24 * 3600.0


def connector(emu: MetaEmulator, **kw: object) -> MessengerConnector:
    return MessengerConnector(messenger_config(emu, **kw))


async def test_customer_to_slack_and_reply_back_with_own_echoes_ignored(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta, department_id="sales")
        hub, slack = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        async with hub:
            assert (await meta.messenger_text(lea, "Bonjour").deliver(messenger.handle_http)).status == 200
            await hub.wait_idle()
            state = await hub.conversation(conversation_id)
            assert state is not None
            assert (state.conversation.source, state.conversation.department_id) == ("messenger", "sales")
            assert state.conversation.user.name == "Lea"  # from the profile API
            assert state.conversation.user.avatar_url is not None
            channel = await slack.channel_for(conversation_id)
            assert channel is not None
            assert [m["text"] for m in workspace.emu.messages(channel)] == ["Bonjour"]
            await workspace.agent_answers(slack, conversation_id, "Bonjour Lea")
            await hub.wait_idle()
            echoes = meta.take_echoes()
            assert len(echoes) == 1
            for echo in echoes:
                assert (await echo.deliver(messenger.handle_http)).status == 200
            await hub.wait_idle()
            transcript = await hub.store.transcript(conversation_id)
    assert [(e.role, e.message.text) for e in transcript] == [("customer", "Bonjour"), ("agent", "Bonjour Lea")]
    (sent,) = meta.sent_to(lea)
    assert sent.text == "Bonjour Lea"
    assert sent.body["messaging_type"] == "RESPONSE"


async def test_answer_from_the_page_inbox_joins_the_transcript_and_slack(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta)
        hub, slack = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        async with hub:
            await meta.messenger_text(lea, "hello").deliver(messenger.handle_http)
            await hub.wait_idle()
            echo = meta.page_reply(lea, "answered in Business Suite")
            for _ in range(2):  # a repeated delivery is kept once
                assert (await echo.deliver(messenger.handle_http)).status == 200
            # An echo for someone who never wrote is not a conversation.
            stranger = meta.messenger_user("Stranger")
            await meta.page_reply(stranger, "hi?").deliver(messenger.handle_http)
            await hub.wait_idle()
            transcript = await hub.store.transcript(conversation_id)
            assert await hub.conversation(f"messenger:{stranger.id}") is None
            channel = await slack.channel_for(conversation_id)
    assert [(e.role, e.message.text) for e in transcript] == [
        ("customer", "hello"),
        ("agent", "answered in Business Suite"),
    ]
    assert channel is not None
    assert [m["text"] for m in workspace.emu.messages(channel)] == ["hello", "answered in Business Suite"]


async def test_instagram_conversation(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta, instagram_id=meta.instagram_id)
        hub, slack = workspace.hub(messenger)
        ig = meta.messenger_user("Insta", platform="instagram")
        conversation_id = f"instagram:{ig.id}"
        async with hub:
            await meta.messenger_text(ig, "from Instagram").deliver(messenger.handle_http)
            await hub.wait_idle()
            state = await hub.conversation(conversation_id)
            assert state is not None and state.conversation.source == "messenger"
            assert state.conversation.user.details == {"platform": "Instagram", "instagram": "@insta"}
            assert state.conversation.user.name == "Insta"
            files = [("card.pdf", b"%PDF", "application/pdf")]
            await workspace.agent_answers(slack, conversation_id, "from Slack", files=files)
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    # Instagram takes files by URL only: an uploaded file is named instead.
    assert [m.text for m in meta.sent_to(ig)] == ["from Slack", "[card.pdf]"]


async def test_human_agent_tag_after_24_hours_and_parked_after_7_days(workspace: Workspace) -> None:
    clock = Clock()
    with MetaEmulator(clock=clock) as meta:
        messenger = connector(meta)
        hub, slack = workspace.hub(messenger, clock=clock)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        async with hub:
            await meta.messenger_text(lea, "hello").deliver(messenger.handle_http)
            await hub.wait_idle()
            clock.now += 2 * DAY
            await workspace.agent_answers(slack, conversation_id, "sorry for the wait")
            await hub.wait_idle()
            assert await hub.dead_letters() == []
            clock.now += 7 * DAY
            await workspace.agent_answers(slack, conversation_id, "still there?")
            await hub.wait_idle()
            dead = await hub.dead_letters()
    (sent,) = meta.sent_to(lea)
    assert (sent.body["messaging_type"], sent.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert len(dead) == 1 and "PermissionDenied" in dead[0].reason and "7 days" in dead[0].reason


async def test_picture_in_and_files_out(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta)
        hub, slack = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        async with hub:
            await meta.messenger_image(lea, b"\xff\xd8 photo").deliver(messenger.handle_http)
            await hub.wait_idle()
            transcript = await hub.store.transcript(conversation_id)
            await workspace.agent_answers(slack, conversation_id, "got it", files=[("a.png", b"\x89PNG", "image/png")])
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    (attachment,) = transcript[0].message.attachments
    assert attachment.content == b"\xff\xd8 photo"
    text, image = meta.sent_to(lea)
    assert text.text == "got it"
    assert image.type == "image" and image.upload is not None and image.upload.content == b"\x89PNG"


async def test_unknown_recipient_is_not_found() -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta)
        with pytest.raises(NotFound):
            await messenger._send({"recipient": {"id": "1"}, "messaging_type": "RESPONSE"}, {"text": "x"})


async def test_handshake_and_signature(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = connector(meta)
        hub, _ = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        async with hub:
            ok = await meta.handshake(challenge="c-1").deliver(messenger.handle_http)
            assert (ok.status, ok.body) == (200, b"c-1")
            assert (await meta.handshake(verify_token="x").deliver(messenger.handle_http)).status == 403
            delivery = meta.messenger_text(lea, "hi")
            assert (await messenger.handle_http({}, delivery.body)).status == 401
            bad = {"X-Hub-Signature-256": "md5=abc"}
            assert (await messenger.handle_http(bad, delivery.body)).status == 401
            await hub.wait_idle()
            assert await hub.conversation(f"messenger:{lea.id}") is None
