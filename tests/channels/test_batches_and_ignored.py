"""One bad item of a batched webhook is skipped with a warning and the others still count (Meta would send the
same body again after a 400); every update or event that is not relayed says so in a log line."""

from __future__ import annotations

import copy
import logging
from typing import Any

import anyio
import pytest

from norbit_connectors.channels import messenger as messenger_module
from norbit_connectors.channels.messenger import MessengerConnector, parse_webhook
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector, parse_update
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.channels.whatsapp import parse_webhook as parse_whatsapp
from norbit_connectors.testing import TelegramEmulator
from norbit_connectors.testing._meta import MetaEmulator

from .conftest import Workspace
from .test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_a_bad_whatsapp_message_in_a_batch_loses_nothing_after_it(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        payload = meta.whatsapp_text(maria, "first").payload
        value = payload["entry"][0]["changes"][0]["value"]
        second = meta.whatsapp_text(maria, "third").payload["entry"][0]["changes"][0]["value"]["messages"][0]
        overlong = copy.deepcopy(second) | {"id": "wamid.overlong", "from": "4" * 5000}
        value["messages"] += [{"type": "image", "image": {}, "from": maria.wa_id, "id": "wamid.x"}, overlong, second]
        async with hub:
            with caplog.at_level(logging.WARNING):
                assert (await meta.signed(payload).deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert [e.message.text for e in transcript] == ["first", "third"]
    warned = _warnings(caplog)
    assert any("a message skipped: a WhatsApp image message needs image.id" in w for w in warned), warned
    assert any("a message skipped: the conversation id" in w for w in warned), warned


async def test_a_bad_messenger_event_in_a_batch_loses_nothing_after_it(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        hub, _ = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        payload = meta.messenger_text(lea, "first").payload
        events = payload["entry"][0]["messaging"]
        last = meta.messenger_text(lea, "last").payload["entry"][0]["messaging"][0]
        events += [{"sender": {}, "recipient": {}}, "not an event", {**last, "message": {"text": "no mid"}}, last]
        payload["entry"].insert(0, 7)
        async with hub:
            with caplog.at_level(logging.WARNING):
                assert (await meta.signed(payload).deliver(messenger.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"messenger:{lea.id}")
    assert [e.message.text for e in transcript] == ["first", "last"]
    warned = _warnings(caplog)
    assert sum("skipped" in w for w in warned) == 4, warned


def test_the_body_as_a_whole_still_gets_a_400() -> None:
    from norbit_connectors.exceptions import InvalidRequest

    with pytest.raises(InvalidRequest):
        parse_whatsapp({"object": "whatsapp_business_account", "entry": "x"})
    with pytest.raises(InvalidRequest):
        parse_webhook({"object": "page", "entry": {}})


def test_a_webhook_for_another_object_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_whatsapp({"object": "page", "entry": []}) == []
        assert parse_webhook({"object": "whatsapp_business_account", "entry": []}) == ([], [])
    warned = _warnings(caplog)
    assert any("object page, not whatsapp_business_account" in w for w in warned), warned
    assert any("object 'whatsapp_business_account', not page or instagram" in w for w in warned), warned


def test_whatsapp_errors_in_a_webhook_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    data = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "1"},
                            "errors": [{"code": 131052, "title": "Media download error"}],
                        },
                    }
                ]
            }
        ],
    }
    with caplog.at_level(logging.WARNING):
        assert parse_whatsapp(data, phone_number_id="1") == []
    assert any("error 131052: Media download error" in w for w in _warnings(caplog))


def _event(**fields: Any) -> dict[str, Any]:
    return {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "timestamp": 1, **fields}


def test_messenger_events_not_relayed_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    events = [
        _event(message_edit={"mid": "m1", "text": "x", "num_edit": 1}),
        _event(reaction={"mid": "m1", "action": "react", "emoji": "❤"}),
        _event(referral={"ref": "ad"}),
        _event(optin={"type": "notification_messages"}),
    ]
    data = {"object": "page", "entry": [{"id": "PAGE", "messaging": events, "standby": [_event(message={})]}]}
    with caplog.at_level(logging.INFO):
        assert parse_webhook(data, served={"PAGE"}) == ([], [])
    logged = [r.getMessage() for r in caplog.records]
    for kind in ("message_edit", "reaction", "referral", "optin"):
        assert any(f"event of kind {kind} ignored" in m for m in logged), (kind, logged)
    assert any("1 standby event(s) ignored" in m for m in logged), logged


def test_an_echo_with_only_an_attachment_keeps_it() -> None:
    echo = _event(
        sender={"id": "PAGE"},
        recipient={"id": "PSID1"},
        message={"mid": "m9", "is_echo": True, "attachments": [{"type": "image", "payload": {"url": "https://x/y"}}]},
    )
    _, echoes = parse_webhook({"object": "page", "entry": [{"id": "PAGE", "messaging": [echo]}]}, served={"PAGE"})
    assert [e.text for e in echoes] == ["[image] https://x/y"]


def test_instagram_without_instagram_id_warns_once_per_account(caplog: pytest.LogCaptureFixture) -> None:
    messenger_module._WARNED.clear()
    entry = {"id": "IG1", "messaging": [_event(recipient={"id": "IG1"}, message={"mid": "m", "text": "hi"})]}
    data = {"object": "instagram", "entry": [entry]}
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert parse_webhook(data, served={"PAGE"}) == ([], [])
        parse_webhook({"object": "instagram", "entry": [{**entry, "id": "IG2"}]}, served={"PAGE"})
    warned = [w for w in _warnings(caplog) if "instagram_id" in w]
    assert len(warned) == 2 and "IG1" in warned[0] and "IG2" in warned[1], warned


def _tg(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    base = {"message_id": 5, "date": 1, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Zoë"}}
    return {"update_id": 77, kind: base | message}


def test_telegram_edits_and_business_messages_are_relayed() -> None:
    edited = parse_update(_tg("edited_message", {"text": "new words", "edit_date": 9}))
    assert edited is not None and edited.text == "[edited]\nnew words" and edited.message_id == "5:edited:9"
    business = parse_update(_tg("business_message", {"text": "hello shop", "business_connection_id": "b1"}))
    assert business is not None and business.text == "hello shop" and business.conversation.id == "telegram:42"


def test_telegram_updates_not_relayed_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert parse_update({"update_id": 1, "channel_post": {"message_id": 1}}) is None
        assert parse_update({"update_id": 2, "callback_query": {"id": "c"}}) is None
    logged = [r.getMessage() for r in caplog.records]
    assert any("update 1 of kind channel_post ignored" in m for m in logged), logged
    assert any("update 2 of kind callback_query ignored" in m for m in logged), logged


def test_telegram_group_chats_and_bots_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    group = _tg("message", {"text": "hi all"})
    group["message"]["chat"] = {"id": -100, "type": "supergroup"}
    bot = _tg("message", {"text": "beep"})
    bot["message"]["from"] = {"id": 7, "is_bot": True, "first_name": "Other bot"}
    with caplog.at_level(logging.INFO):
        assert parse_update(group) is None
        assert parse_update(bot) is None
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"update {group['update_id']} from a supergroup chat: not relayed" in m for m in logged), logged
    assert any(f"update {bot['update_id']} sent by a bot: not relayed" in m for m in logged), logged


async def test_a_telegram_edit_reaches_slack(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = TelegramConnector(
            TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        )
        hub, _ = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            first = tg.send_text(zoe, "helo")
            assert (await first.deliver(telegram.handle_http)).status == 200
            update = copy.deepcopy(first.payload)
            update["update_id"] += 1000
            update["edited_message"] = update.pop("message") | {"text": "hello", "edit_date": 5}
            assert (await tg.update(update).deliver(telegram.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"telegram:{zoe.chat_id}")
    assert [e.message.text for e in transcript] == ["helo", "[edited]\nhello"]


async def test_a_business_chat_is_relayed_and_answered_through_the_business_account(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = TelegramConnector(
            TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        )
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            update = copy.deepcopy(tg.send_text(zoe, "is the shop open?").payload)
            update["business_message"] = update.pop("message") | {"business_connection_id": "BC1"}
            assert (await tg.update(update).deliver(telegram.handle_http)).status == 200
            own = copy.deepcopy(update)  # the business account's own answer in the same chat: not a customer's
            own["update_id"] += 1
            own["business_message"] |= {"message_id": 999, "from": {"id": 1234, "first_name": "Shop"}, "text": "yes"}
            assert (await tg.update(own).deliver(telegram.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            conversation_id = f"telegram:{zoe.chat_id}"
            transcript = await hub.store.transcript(conversation_id)
            assert [e.message.text for e in transcript] == ["is the shop open?"]
            await workspace.agent_answers(slack, conversation_id, "Until six")
            with anyio.fail_after(30):
                await hub.wait_idle()
        assert [(m.text, m.business_connection_id) for m in tg.sent_to(zoe)] == [("Until six", "BC1")]
