"""Every kind of customer message reaches Slack as something readable: a voice message as "[voice message, 0:07]"
with its file, a location with a map link, a contact, a poll, a sticker, a die, and an unknown kind by its name."""

from __future__ import annotations

import pytest

from norbit_connectors.channels._base import ChannelConnector
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._telegram import TelegramEmulator
from norbit_connectors.testing._webhook import Webhook

from .conftest import Workspace
from .test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio

MAP = "https://www.openstreetmap.org/?mlat=52.52&mlon=13.405#map=16/52.52/13.405"


Seen = list[tuple[str, list[tuple[str, bytes | None]]]]


async def run(
    workspace: Workspace, connector: ChannelConnector, conversation_id: str, deliveries: list[Webhook]
) -> Seen:
    """Deliver each webhook; the transcript as (text, [(file name, content)]), once all reached Slack."""
    hub, slack = workspace.hub(connector)
    async with hub:
        for delivery in deliveries:
            assert (await delivery.deliver(connector.handle_http)).status == 200
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        transcript = await hub.store.transcript(conversation_id)
        channel = await slack.channel_for(conversation_id)
        assert channel is not None
        posted = workspace.emu.messages(channel)
    assert len(posted) >= len(deliveries)  # every one reached Slack (files may add their own messages)
    return [(e.message.text, [(a.name, a.content) for a in e.message.attachments]) for e in transcript]


async def test_telegram_kinds(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = TelegramConnector(
            TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        )
        ann = tg.add_customer("Ann")
        deliveries = [
            tg.send_voice(ann, b"OggS voice", duration=7),
            tg.send_audio(ann, b"ID3", duration=185, performer="Band", title="Song"),
            tg.send_video(ann, b"mp4", duration=3725, caption="watch"),
            tg.send_video_note(ann, b"note", duration=5),
            tg.send_animation(ann, b"gif", duration=2),
            tg.send_sticker(ann, b"RIFF webp", emoji="😀"),
            tg.send_sticker(ann, b"tgs", emoji=None, animated=True),
            tg.send_location(ann, 52.52, 13.405),
            tg.send_location(ann, 52.52, 13.405, live_period=600),
            tg.send_venue(ann, 52.52, 13.405, title="Office", address="Main St 1"),
            tg.send_contact(ann, "+49 30 1234567", "Ann", last_name="Smith"),
            tg.send_poll(ann, "Which day?", ["Monday", "Tuesday"]),
            tg.send_poll(ann, "2+2?", ["4", "5"], quiz=True),
            tg.send_dice(ann, emoji="🎲", value=4),
            tg.send_message(ann, {"game": {"title": "Chess"}}),
            tg.send_message(ann, {}),
        ]
        got = await run(workspace, telegram, f"telegram:{ann.chat_id}", deliveries)
    assert got == [
        ("[voice message, 0:07]", [("voice-1.ogg", b"OggS voice")]),
        ("[audio, Band - Song, 3:05]", [("track.mp3", b"ID3")]),
        ("[video, 1:02:05]\nwatch", [("video-3.mp4", b"mp4")]),
        ("[video message, 0:05]", [("video-message-4.mp4", b"note")]),
        ("[animation, 0:02]", [("animation.gif.mp4", b"gif")]),  # one file, not the animation and the document
        ("[sticker 😀]", [("sticker-6.webp", b"RIFF webp")]),
        ("[sticker]", []),
        (f"[location] 52.52, 13.405 {MAP}", []),
        (f"[live location] 52.52, 13.405 {MAP}", []),
        (f"[venue] Office, Main St 1 52.52, 13.405 {MAP}", []),
        ("[contact] Ann Smith +49 30 1234567", []),
        ("[poll] Which day?: Monday / Tuesday", []),
        ("[quiz] 2+2?: 4 / 5", []),
        ("[dice 🎲 4]", []),
        ("[unsupported message: game]", []),
        ("[unsupported message]", []),
    ]


async def test_whatsapp_kinds(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        maria = meta.whatsapp_customer("Maria")
        deliveries = [
            meta.whatsapp_file(maria, "audio", b"OggS", mime_type="audio/ogg; codecs=opus", voice=True),
            meta.whatsapp_file(maria, "audio", b"ID3", mime_type="audio/mpeg"),
            meta.whatsapp_file(maria, "sticker", b"RIFF", mime_type="image/webp", animated=False),
            meta.whatsapp_file(maria, "video", b"mp4", mime_type="video/mp4", caption="watch"),
            meta.whatsapp_location(maria, 52.52, 13.405, name="Office", address="Main St 1"),
            meta.whatsapp_contacts(maria, ("Ann Smith", "+49 30 1234567"), ("Bob", "+1 555 0100")),
            meta.whatsapp_reaction(maria, "wamid.X", "👍"),
            meta.whatsapp_reaction(maria, "wamid.X", ""),
            meta.whatsapp_order(maria, [("SKU-1", 2, 12.5, "EUR"), ("SKU-2", 1, 3, "EUR")], text="for Friday"),
            meta.whatsapp_unsupported(maria),
            meta.whatsapp_message(maria, "hologram", {"hologram": {}}),
        ]
        got = await run(workspace, whatsapp, f"whatsapp:{maria.wa_id}", deliveries)
    texts = [text for text, _ in got]
    assert texts == [
        "[voice message]",
        "[audio]",
        "[sticker]",
        "watch",
        f"[location] Office, Main St 1 52.52, 13.405 {MAP}",
        "[contact] Ann Smith +49 30 1234567\n[contact] Bob +1 555 0100",
        "[reaction 👍 to message wamid.X]",
        "[reaction removed to message wamid.X]",
        "[order, 2 x SKU-1 (12.5 EUR), 1 x SKU-2 (3 EUR)]\nfor Friday",
        "[unsupported message: Message type is currently not supported.]",
        "[unsupported message: hologram]",
    ]
    assert [files[0][1] for _, files in got[:4]] == [b"OggS", b"ID3", b"RIFF", b"mp4"]


async def test_messenger_kinds(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        lea = meta.messenger_user("Lea")
        deliveries = [
            meta.messenger_sticker(lea, b"\x89PNG like"),
            meta.messenger_location(lea, 52.52, 13.405),
            meta.messenger_fallback(lea, "A shared page", "https://example.com/page"),
            meta.messenger_message(lea, {"attachments": [{"type": "hologram", "payload": {}}]}),
            meta.messenger_message(lea, {"is_unsupported": True}),
            meta.messenger_message(lea, {}),
        ]
        got = await run(workspace, messenger, f"messenger:{lea.id}", deliveries)
    assert got == [
        ("[sticker 👍]", [("image-1", b"\x89PNG like")]),
        (f"[location] Pinned Location 52.52, 13.405 {MAP}", []),
        ("[link]\nA shared page\nhttps://example.com/page", []),
        ("[unsupported message: hologram]", []),
        ("[unsupported message]", []),
        ("[unsupported message]", []),
    ]
