"""No token or secret in any log line, at any level, of any library, across full round trips: a customer writes
(text and a file) from Telegram, WhatsApp and Messenger, the message reaches the Slack emulator's channel, an agent
answers in Slack (with a file), and the answer reaches the customer's app. Every logger is captured at DEBUG."""

from __future__ import annotations

import gc
import logging
import traceback
import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._redact import SecretFilter, protect, redact
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.exceptions import NorbitError
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator
from norbit_connectors.testing._telegram import TelegramEmulator

from ..channels.conftest import Workspace
from ..channels.test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio

PHOTO = b"\xff\xd8\xff" + bytes(range(256)) * 8


class Everything(logging.Handler):
    """Keeps every record, formatted as a handler would write it (with its traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    saved = {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved[name] = (logger.level, logger.propagate, logger.disabled)
            logger.setLevel(logging.DEBUG)
            logger.propagate = True
            logger.disabled = False
    root_level = root.level
    factory, make_record = logging.getLogRecordFactory(), logging.Logger.makeRecord
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        logging.setLogRecordFactory(factory)
        logging.Logger.makeRecord = make_record  # type: ignore[method-assign]
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, (level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


def assert_clean(captured: Everything, secrets: list[str], *texts: str) -> None:
    assert captured.lines, "nothing was logged: the capture is not working"
    # The capture sees the third-party libraries' own lines (httpx logs every request at INFO).
    assert any(line.startswith("httpx ") for line in captured.lines)
    assert any(line.startswith("httpcore.") for line in captured.lines)
    assert any(line.startswith("slack_sdk.") for line in captured.lines)
    assert any(line.startswith("norbit_connectors") for line in captured.lines)
    for secret in secrets:
        assert len(secret) >= 8
        for line in captured.lines:
            assert secret not in line, line
        for record in captured.records:
            assert secret not in repr(record.args), record.msg
            assert secret not in str(record.msg), record.msg
        for text in texts:
            assert secret not in text, text


def reprs(*objects: object) -> list[str]:
    return [repr(o) for o in objects]


async def test_telegram_round_trip_logs_no_secret(workspace: Workspace, captured: Everything) -> None:
    with TelegramEmulator() as tg:
        config = TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        telegram = TelegramConnector(config)
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        conversation_id = f"telegram:{zoe.chat_id}"
        errors: list[str] = []
        async with hub:
            assert (await tg.send_text(zoe, "hello").deliver(telegram.handle_http)).status == 200
            assert (await tg.send_photo(zoe, PHOTO, caption="look").deliver(telegram.handle_http)).status == 200
            refused = await tg.update(tg.send_text(zoe, "x").payload, secret_token="wrong").deliver(
                telegram.handle_http
            )
            assert refused.status == 401
            await hub.wait_idle()
            await workspace.agent_answers(
                slack, conversation_id, "answer", files=[("a.pdf", b"%PDF agent", "application/pdf")]
            )
            await hub.wait_idle()
            assert await hub.dead_letters() == []
            tg.fail_next("sendMessage", 500)
            with pytest.raises(NorbitError) as failed:
                await telegram.call("sendMessage", chat_id=zoe.chat_id, text="x")
            errors += [str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]
            unreachable = TelegramConnector(
                TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url="http://127.0.0.1:9")
            )
            with pytest.raises(NorbitError) as failed:
                await unreachable.call("getMe")
            errors += [str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]
        assert [m.kind for m in tg.sent_to(zoe)] == ["text", "document"]
        secrets = [tg.bot_token, tg.secret_token, workspace.emu.bot_token, workspace.emu.signing_secret]
        assert_clean(captured, secrets, *errors, *reprs(config, telegram, slack, slack.config, hub))


async def test_slack_round_trip_masks_the_slack_secrets_a_host_logs(workspace: Workspace, captured: Everything) -> None:
    with TelegramEmulator() as tg:
        telegram = TelegramConnector(
            TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        )
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        host = logging.getLogger("host.setup")
        async with hub:
            host.debug(
                "Slack app: signing secret %s, bot token %s", slack.config.signing_secret, slack.config.bot_token
            )
            host.debug(f"Slack signing secret is {slack.config.signing_secret}")
            assert (await tg.send_text(zoe, "hello").deliver(telegram.handle_http)).status == 200
            refused = tg.update(tg.send_text(zoe, "x").payload, secret_token="wrong")
            assert (await refused.deliver(telegram.handle_http)).status == 401
            await hub.wait_idle()
            await workspace.agent_answers(slack, f"telegram:{zoe.chat_id}", "answer")
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        assert [m.kind for m in tg.sent_to(zoe)] == ["text"]
        assert any(line == "host.setup DEBUG Slack signing secret is ***" for line in captured.lines)
        assert_clean(captured, [workspace.emu.signing_secret, workspace.emu.bot_token])


async def test_whatsapp_round_trip_logs_no_secret(workspace: Workspace, captured: Everything) -> None:
    with MetaEmulator() as meta:
        config = whatsapp_config(meta)
        whatsapp = WhatsAppConnector(config)
        hub, slack = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        conversation_id = f"whatsapp:{maria.wa_id}"
        async with hub:
            hello = meta.whatsapp_text(maria, "hello")
            for _ in range(2):  # a redelivery too
                assert (await hello.deliver(whatsapp.handle_http)).status == 200
            assert (await meta.whatsapp_media(maria, PHOTO, caption="look").deliver(whatsapp.handle_http)).status == 200
            assert (await meta.handshake().deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            await workspace.agent_answers(slack, conversation_id, "answer", files=[("a.png", b"\x89PNG", "image/png")])
            await hub.wait_idle()
            assert await hub.dead_letters() == []
            wrong = WhatsAppConnector(whatsapp_config(meta, access_token="EAAG-not-the-token-at-all"))
            with pytest.raises(NorbitError) as failed:
                await wrong.call("messages", "POST", f"{meta.phone_number_id}/messages", json={})
            errors = [str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]
        assert [m.type for m in meta.sent_to(maria)] == ["text", "image"]
        secrets = [
            meta.access_token,
            meta.app_secret,
            meta.verify_token,
            workspace.emu.bot_token,
            workspace.emu.signing_secret,
            "EAAG-not-the-token-at-all",
        ]
        assert_clean(captured, secrets, *errors, *reprs(config, whatsapp, wrong, slack, slack.config, hub))


async def test_messenger_round_trip_logs_no_secret(workspace: Workspace, captured: Everything) -> None:
    with MetaEmulator() as meta:
        config = messenger_config(meta)
        messenger = MessengerConnector(config)
        hub, slack = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        async with hub:
            hello = meta.messenger_text(lea, "hello")
            for _ in range(2):  # a redelivery too
                assert (await hello.deliver(messenger.handle_http)).status == 200
            assert (await meta.messenger_image(lea, PHOTO).deliver(messenger.handle_http)).status == 200
            await hub.wait_idle()
            await workspace.agent_answers(slack, conversation_id, "answer", files=[("a.png", b"\x89PNG", "image/png")])
            await hub.wait_idle()
            for echo in meta.take_echoes():
                await echo.deliver(messenger.handle_http)
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        assert [m.type for m in meta.sent_to(lea)] == ["text", "image"]
        secrets = [
            meta.page_access_token,
            meta.app_secret,
            meta.verify_token,
            workspace.emu.bot_token,
            workspace.emu.signing_secret,
        ]
        assert_clean(captured, secrets, *reprs(config, messenger, slack, slack.config, hub))


class _Owner:
    """Stands for a connector: its secrets are protected while it lives."""


secret_texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=8, max_size=40)


@given(secret=secret_texts, before=st.text(max_size=20), after=st.text(max_size=20))
def test_redact_removes_a_protected_secret_in_any_context(secret: str, before: str, after: str) -> None:
    owner = _Owner()
    protect(owner, secret)
    for text in (before + secret + after, before + urllib.parse.quote(secret, safe="") + after):
        assert secret not in redact(text)
        assert urllib.parse.quote(secret, safe="") not in redact(text)


def test_records_of_any_logger_lose_the_secret_in_message_args_and_traceback(captured: Everything) -> None:
    owner = _Owner()
    secret = "tok-" + "x" * 30
    protect(owner, secret, "short")  # too short to track: ordinary words must stay
    logger = logging.getLogger("some.library.deep.child")
    logger.debug("GET /bot%s/getMe", secret)
    try:
        raise RuntimeError(f"failed at /bot{secret}/")
    except RuntimeError:
        logger.exception("request failed")
    logger.info("a short word stays")
    text = "\n".join(captured.lines)
    assert secret not in text
    assert "GET /bot***/getMe" in text and "failed at /bot***/" in text
    assert "a short word stays" in text
    handler_filter = SecretFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (secret,), None)
    assert handler_filter.filter(record) and secret not in record.getMessage()
    del owner
    gc.collect()
    assert redact(secret) == secret  # forgotten with its owner
