from __future__ import annotations

from pathlib import Path

import pytest

from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.exceptions import (
    ConfigurationError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransportError,
)
from norbit_connectors.store import SQLiteStore
from norbit_connectors.testing._telegram import TelegramEmulator

from .conftest import Workspace

pytestmark = pytest.mark.anyio


def connector(emu: TelegramEmulator, **kw: object) -> TelegramConnector:
    return TelegramConnector(
        TelegramConfig(bot_token=emu.bot_token, secret_token=emu.secret_token, base_url=emu.base_url, **kw)  # type: ignore[arg-type]
    )


async def test_customer_to_slack_and_agent_reply_back(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg, department_id="sales")
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë", last_name="Smith", username="zoe")
        async with hub:
            response = await tg.send_text(zoe, "Hello from Telegram").deliver(telegram.handle_http)
            assert response.status == 200
            await hub.wait_idle()
            conversation_id = f"telegram:{zoe.chat_id}"
            state = await hub.conversation(conversation_id)
            assert state is not None
            assert state.conversation.source == "telegram"
            assert state.conversation.department_id == "sales"
            assert state.conversation.user.name == "Zoë Smith"
            channel = await slack.channel_for(conversation_id)
            assert channel is not None
            assert [m["text"] for m in workspace.emu.messages(channel)] == ["Hello from Telegram"]
            await workspace.agent_answers(slack, conversation_id, "Hi Zoë, how can I help?")
            await hub.wait_idle()
        assert [(m.kind, m.text) for m in tg.sent_to(zoe)] == [("text", "Hi Zoë, how can I help?")]
        assert [r.message.text for r in workspace.replies] == ["Hi Zoë, how can I help?"]


async def test_photo_and_document_reach_slack_as_files(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, _ = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        photo = b"\xff\xd8\xff" + bytes(range(256)) * 40
        async with hub:
            await tg.send_photo(zoe, photo, caption="my screen").deliver(telegram.handle_http)
            await tg.send_document(
                zoe, b"%PDF-1.4 invoice", file_name="invoice.pdf", mime_type="application/pdf"
            ).deliver(telegram.handle_http)
            await hub.wait_idle()
            transcript = await hub.store.transcript(f"telegram:{zoe.chat_id}")
        assert [e.message.text for e in transcript] == ["my screen", ""]
        first, second = (e.message.attachments for e in transcript)
        assert first[0].content == photo  # the largest size, not a thumbnail
        assert first[0].content_type == "image/jpeg"
        assert (second[0].name, second[0].content, second[0].content_type) == (
            "invoice.pdf",
            b"%PDF-1.4 invoice",
            "application/pdf",
        )
        assert "getFile" in tg.calls


async def test_agent_files_go_out_as_photo_and_document(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            await tg.send_text(zoe, "send me the form").deliver(telegram.handle_http)
            await hub.wait_idle()
            files = [("form.pdf", b"%PDF form", "application/pdf"), ("shot.png", b"\x89PNG shot", "image/png")]
            await workspace.agent_answers(slack, f"telegram:{zoe.chat_id}", "here you go", files=files)
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        sent = tg.sent_to(zoe)
        assert (sent[0].kind, sent[0].text) == ("text", "here you go")
        uploads = {(m.kind, m.file_name, m.content) for m in sent[1:]}
        assert uploads == {("document", "form.pdf", b"%PDF form"), ("photo", "shot.png", b"\x89PNG shot")}


async def test_rate_limit_and_server_error_are_retried_without_duplicates(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            await tg.send_text(zoe, "hi").deliver(telegram.handle_http)
            await hub.wait_idle()
            tg.fail_next("sendMessage", 429, retry_after=0)
            tg.fail_next("sendMessage", 500)
            long = "word " * 1000  # two messages: 4096 characters at most each
            await workspace.agent_answers(slack, f"telegram:{zoe.chat_id}", long.strip())
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        texts = [m.text or "" for m in tg.sent_to(zoe)]
        assert len(texts) == 2 and all(len(t) <= 4096 for t in texts)
        assert " ".join(texts).split() == long.split()
        assert tg.calls.count("sendMessage") == 4


async def test_part_sent_before_a_failure_is_not_sent_again(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            await tg.send_text(zoe, "hi").deliver(telegram.handle_http)
            await hub.wait_idle()
            tg.fail_next("sendDocument", 503)
            await workspace.agent_answers(
                slack, f"telegram:{zoe.chat_id}", "file", files=[("a.txt", b"a", "text/plain")]
            )
            await hub.wait_idle()
        assert [(m.kind, m.text) for m in tg.sent_to(zoe)] == [("text", "file"), ("document", None)]


async def test_blocked_bot_is_not_found(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, _ = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        tg.block_bot(zoe)
        async with hub:
            with pytest.raises(NotFound, match="blocked"):
                await telegram.call("sendMessage", chat_id=zoe.chat_id, text="hello?")
            with pytest.raises(NotFound, match="chat not found"):
                await telegram.call("sendMessage", chat_id=1, text="hello?")
            tg.fail_next("sendMessage", 429, retry_after=7)
            with pytest.raises(RateLimited) as limited:
                await telegram.call("sendMessage", chat_id=zoe.chat_id, text="x")
            assert limited.value.retry_after == 7
            tg.fail_next("sendMessage", 502)
            with pytest.raises(TransportError):
                await telegram.call("sendMessage", chat_id=zoe.chat_id, text="x")


async def test_wrong_token_is_permission_denied_and_never_shown() -> None:
    with TelegramEmulator() as tg:
        wrong = TelegramConnector(TelegramConfig(bot_token="1:wrong-token", secret_token="s", base_url=tg.base_url))
        with pytest.raises(PermissionDenied) as denied:
            await wrong.call("getMe")
        assert "wrong-token" not in str(denied.value)
        assert "wrong-token" not in repr(wrong) and "wrong-token" not in repr(wrong.config)


async def test_unreachable_api_is_a_transport_error_without_the_token() -> None:
    telegram = TelegramConnector(
        TelegramConfig(bot_token="1:secret-token", secret_token="s", base_url="http://127.0.0.1:9")
    )
    with pytest.raises(TransportError) as failed:
        await telegram.call("getMe")
    assert "secret-token" not in str(failed.value)


async def test_set_webhook_registers_the_secret_token() -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        await telegram.set_webhook("https://example.com/hooks/telegram")
        assert tg.webhook_url == "https://example.com/hooks/telegram"
        assert tg.webhook_secret == tg.secret_token
        with pytest.raises(RemoteError, match="HTTPS"):
            await telegram.set_webhook("http://example.com/plain")


async def test_webhook_checks(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = connector(tg)
        hub, _ = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        update = tg.send_text(zoe, "hi")
        async with hub:
            assert (await telegram.handle_http({}, update.body)).status == 401
            other = tg.update(update.payload, secret_token="other")
            assert (await other.deliver(telegram.handle_http)).status == 401
            assert (await telegram.handle_http(dict(update.headers), update.body, method="GET")).status == 405
            assert (await tg.update(b"x" * (2 << 20)).deliver(telegram.handle_http)).status == 413
            # Group chats are acknowledged and ignored; an edit is relayed; a sticker is a message like any other.
            for payload in (
                {
                    "update_id": 1,
                    "edited_message": {"message_id": 1, "chat": {"id": 5}, "text": "fixed", "edit_date": 9},
                },
                {"update_id": 2, "message": {"message_id": 2, "chat": {"id": 5, "type": "group"}, "text": "x"}},
                {"update_id": 3, "message": {"message_id": 3, "chat": {"id": 5, "type": "private"}, "sticker": {}}},
            ):
                assert (await tg.update(payload).deliver(telegram.handle_http)).status == 200
            await hub.wait_idle()
            assert [e.message.text for e in await hub.store.transcript("telegram:5")] == [
                "[edited]\nfixed",
                "[sticker]",
            ]


def test_config_validation() -> None:
    with pytest.raises(ConfigurationError, match="secret_token"):
        TelegramConfig(bot_token="1:a", secret_token="has space")
    with pytest.raises(ConfigurationError, match="bot_token"):
        TelegramConfig(bot_token="nocolon", secret_token="ok")
    with pytest.raises(ConfigurationError):
        TelegramConnector("not a config")  # type: ignore[arg-type]


async def test_accepted_message_survives_a_restart(workspace: Workspace, tmp_path: Path) -> None:
    with TelegramEmulator() as tg:
        zoe = tg.add_customer("Zoë")
        photo = tg.send_photo(zoe, b"\xff\xd8 photo", caption="before the restart")
        tg.fail_next("getFile", 503, times=1000)
        path = tmp_path / "norbit.sqlite3"
        telegram = connector(tg)
        hub, _ = workspace.hub(telegram, store=SQLiteStore(path))
        async with hub:
            assert (await photo.deliver(telegram.handle_http)).status == 200
        tg.clear_faults()
        telegram = connector(tg)
        hub, _ = workspace.hub(telegram, store=SQLiteStore(path))
        async with hub:
            assert (await photo.deliver(telegram.handle_http)).status == 200  # a redelivery: dropped
            await hub.wait_idle()
            transcript = await hub.store.transcript(f"telegram:{zoe.chat_id}")
    assert [(e.message.text, e.message.attachments[0].content) for e in transcript] == [
        ("before the restart", b"\xff\xd8 photo")
    ]
