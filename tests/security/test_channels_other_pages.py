"""Webhooks for pages and numbers a connector does not serve: signed with the app's secret (one Meta app can serve
many pages and numbers), acknowledged with 200 so Meta does not retry, and never relayed to the agents."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator
from norbit_connectors.testing._webhook import Webhook

from ..channels.conftest import Workspace
from ..channels.test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio

OTHER = "999999999999999"


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


def rewritten(meta: MetaEmulator, delivery: Webhook, change: Any) -> Webhook:
    payload = copy.deepcopy(delivery.payload)
    change(payload)
    return meta.signed(payload)


async def relayed_texts(workspace: Workspace, slack: Any, conversation_id: str) -> list[str]:
    channel = await slack.channel_for(conversation_id)
    return [m["text"] for m in workspace.emu.messages(channel)] if channel is not None else []


def _set_entry(payload: Any, value: str) -> None:
    payload["entry"][0]["id"] = value


def _set_recipient(payload: Any, value: str) -> None:
    payload["entry"][0]["messaging"][0]["recipient"]["id"] = value


async def test_messenger_relays_only_its_own_page(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        hub, slack = workspace.hub(messenger)
        ann = meta.messenger_user("Ann")
        conversation_id = f"messenger:{ann.id}"
        caplog.set_level(logging.INFO)
        async with hub:
            foreign = [
                rewritten(
                    meta,
                    meta.messenger_text(ann, "other page"),
                    lambda p: (_set_entry(p, OTHER), _set_recipient(p, OTHER)),
                ),
                rewritten(meta, meta.messenger_text(ann, "other entry"), lambda p: _set_entry(p, OTHER)),
                rewritten(meta, meta.messenger_text(ann, "other recipient"), lambda p: _set_recipient(p, OTHER)),
            ]
            for delivery in foreign:
                assert (await delivery.deliver(messenger.handle_http)).status == 200
            # One body with an entry of ours and one of another page: only ours goes through.
            mixed = meta.messenger_text(ann, "ours")
            payload = copy.deepcopy(mixed.payload)
            other = copy.deepcopy(payload["entry"][0])
            other["id"] = OTHER
            other["messaging"][0]["recipient"]["id"] = OTHER
            other["messaging"][0]["message"]["mid"] = "m_other"
            other["messaging"][0]["message"]["text"] = "theirs"
            payload["entry"].append(other)
            assert (await meta.signed(payload).deliver(messenger.handle_http)).status == 200
            await hub.wait_idle()
            assert await relayed_texts(workspace, slack, conversation_id) == ["ours"]
            transcript = await hub.store.transcript(conversation_id)
            assert [e.message.text for e in transcript] == ["ours"]
    notes = [r.getMessage() for r in caplog.records if OTHER in r.getMessage()]
    assert notes and all("not served" in n for n in notes)
    assert all(meta.app_secret not in r.getMessage() for r in caplog.records)


async def test_messenger_echoes_of_another_page_are_not_mirrored(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        hub, _ = workspace.hub(messenger)
        ann = meta.messenger_user("Ann")
        conversation_id = f"messenger:{ann.id}"
        async with hub:
            await meta.messenger_text(ann, "hello").deliver(messenger.handle_http)
            await hub.wait_idle()

            def foreign_sender(p: Any) -> None:
                p["entry"][0]["id"] = OTHER
                p["entry"][0]["messaging"][0]["sender"]["id"] = OTHER

            echo = rewritten(meta, meta.page_reply(ann, "from another page's inbox"), foreign_sender)
            assert (await echo.deliver(messenger.handle_http)).status == 200
            await meta.page_reply(ann, "from our inbox").deliver(messenger.handle_http)
            await hub.wait_idle()
            texts = [e.message.text for e in await hub.store.transcript(conversation_id)]
    assert texts == ["hello", "from our inbox"]


async def test_instagram_entries_need_the_configured_account(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        insta = meta.messenger_user("Insta", platform="instagram")
        conversation_id = f"instagram:{insta.id}"
        unconfigured = MessengerConnector(messenger_config(meta))
        hub, _ = workspace.hub(unconfigured)
        async with hub:
            assert (await meta.messenger_text(insta, "hi").deliver(unconfigured.handle_http)).status == 200
            await hub.wait_idle()
            assert await hub.store.transcript(conversation_id) == []
        configured = MessengerConnector(messenger_config(meta, instagram_id=meta.instagram_id))
        hub, _ = workspace.hub(configured)
        async with hub:
            other = rewritten(
                meta,
                meta.messenger_text(insta, "other account"),
                lambda p: (_set_entry(p, OTHER), _set_recipient(p, OTHER)),
            )
            assert (await other.deliver(configured.handle_http)).status == 200
            assert (await meta.messenger_text(insta, "ours").deliver(configured.handle_http)).status == 200
            await hub.wait_idle()
            assert [e.message.text for e in await hub.store.transcript(conversation_id)] == ["ours"]


def _set_number(payload: Any, value: str | None) -> None:
    metadata = payload["entry"][0]["changes"][0]["value"]["metadata"]
    if value is None:
        del metadata["phone_number_id"]
    else:
        metadata["phone_number_id"] = value


async def test_whatsapp_relays_only_its_own_number(workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, slack = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        conversation_id = f"whatsapp:{maria.wa_id}"
        caplog.set_level(logging.INFO)
        async with hub:
            other = rewritten(meta, meta.whatsapp_text(maria, "other number"), lambda p: _set_number(p, OTHER))
            unnamed = rewritten(meta, meta.whatsapp_text(maria, "no number"), lambda p: _set_number(p, None))
            for delivery in (other, unnamed):
                assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            assert (await meta.whatsapp_text(maria, "ours").deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            assert await relayed_texts(workspace, slack, conversation_id) == ["ours"]
    notes = [r.getMessage() for r in caplog.records if OTHER in r.getMessage()]
    assert notes and all("not served" in n for n in notes)
