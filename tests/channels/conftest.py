from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from norbit_connectors import Agent, AgentReply, Delivery, Department
from norbit_connectors._connector import Connector
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator

AGENTS = [Agent(id="ann", name="Ann", email="ann@support.example")]
DEPARTMENTS = [Department(id="sales", name="Sales")]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Workspace:
    """An emulated Slack workspace with a support channel and one agent, Ann."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        self.ann = emulator.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        self.main = emulator.add_channel("support", members=[emulator.bot_user_id, self.ann])
        self.replies: list[AgentReply] = []

    def slack(self) -> SlackConnector:
        config = SlackConfig(
            bot_token=self.emu.bot_token,
            signing_secret=self.emu.signing_secret,
            main_channel=self.main,
            agent_links={"ann": self.ann},
            base_url=self.emu.base_url,
        )
        return SlackConnector(config, limiter=SlackLimiter(enabled=False))

    def hub(
        self, *connectors: Connector, clock: Callable[[], float] | None = None, **kw: Any
    ) -> tuple[Hub, SlackConnector]:
        slack = self.slack()

        async def on_reply(reply: AgentReply) -> Delivery | None:
            self.replies.append(reply)
            return None

        extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
        kw.setdefault("store", MemoryStore())
        hub = Hub(
            connectors=[slack, *connectors],
            agents=AGENTS,
            departments=DEPARTMENTS,
            on_agent_reply=on_reply,
            retry_base=0.01,
            poll_interval=0.02,
            **extra,
            **kw,
        )
        return hub, slack

    async def agent_answers(
        self, slack: SlackConnector, conversation_id: str, text: str, files: Sequence[tuple[str, bytes, str]] = ()
    ) -> None:
        """Ann writes in the conversation's channel; Slack's event reaches the connector."""
        channel = await slack.channel_for(conversation_id)
        assert channel is not None
        if self.ann not in self.emu.channels[channel]["members"]:
            self.emu.join(channel, self.ann)
        request = self.emu.post_as_user(self.ann, channel, text, files=files)
        response = await request.deliver(slack.handle_http)
        assert response.status == 200


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)
