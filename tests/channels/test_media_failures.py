"""A file that cannot be fetched never loses the message it came with: a permanent failure (404, 400, refused)
relays the text at once with a note; a passing one (a network error, a rate limit) is retried, and the last
attempt relays the text with a note."""

from __future__ import annotations

import anyio
import pytest

from norbit_connectors.channels._base import MEDIA_ATTEMPTS
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator

from .conftest import Workspace
from .test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio


async def _whatsapp_texts(workspace: Workspace, meta: MetaEmulator, url: str | None, faults: int = 0) -> list[str]:
    whatsapp = WhatsAppConnector(whatsapp_config(meta))
    hub, slack = workspace.hub(whatsapp)
    maria = meta.whatsapp_customer("Maria")
    if faults:
        meta.fail_next("media", 503, times=faults)
    async with hub:
        delivery = meta.whatsapp_file(
            maria, "image", b"\xff\xd8", mime_type="image/jpeg", url=url, caption="please call me back"
        )
        assert (await delivery.deliver(whatsapp.handle_http)).status == 200
        with anyio.fail_after(30):
            await hub.wait_idle()
        assert await hub.dead_letters() == []
        channel = await slack.channel_for(f"whatsapp:{maria.wa_id}")
        assert channel is not None
        transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
        posted = [m["text"] for m in workspace.emu.messages(channel)]
    assert all(e.message.attachments == () for e in transcript)
    assert any("please call me back" in p for p in posted)
    return [e.message.text for e in transcript]


async def test_a_media_url_answering_400_still_relays_the_caption(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        texts = await _whatsapp_texts(workspace, meta, f"{meta.root_url}/not-a-file")
    assert texts == ["please call me back\n[image: not fetched (HTTP 400)]"]


async def test_a_media_url_answering_404_still_relays_the_caption(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        texts = await _whatsapp_texts(workspace, meta, f"{meta.root_url}/cdn/gone")
    assert texts == ["please call me back\n[image: not fetched (HTTP 404)]"]


async def test_a_passing_failure_is_retried_and_the_file_arrives(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        meta.fail_next("media", 503, times=MEDIA_ATTEMPTS - 1)
        async with hub:
            delivery = meta.whatsapp_media(maria, b"\xff\xd8 fine", caption="ok")
            assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert [(e.message.text, e.message.attachments[0].content) for e in transcript] == [("ok", b"\xff\xd8 fine")]


async def test_a_failure_on_every_attempt_relays_the_caption_on_the_last(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        texts = await _whatsapp_texts(workspace, meta, None, faults=100)
    assert texts == ["please call me back\n[image: not fetched (network error)]"]


async def test_a_messenger_attachment_gone_still_relays_the_message(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        hub, _ = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        async with hub:
            delivery = meta.messenger_attachment(lea, "image", f"{meta.root_url}/cdn/expired")
            assert (await delivery.deliver(messenger.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(f"messenger:{lea.id}")
    assert [e.message.text for e in transcript] == ["[image: not fetched (HTTP 404)]"]
