from __future__ import annotations

import pytest

from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
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
