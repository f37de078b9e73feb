"""The emulated Slack workspace of the in-process reliability tests, and a fresh PostgreSQL database for the
multi-process ones (NORBIT_TEST_POSTGRES_DSN names the server; CI sets it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.testing._slack_emulator import SlackEmulator

POSTGRES_ENV = "NORBIT_TEST_POSTGRES_DSN"


class Slack:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.main = emu.add_channel("support", members=[emu.bot_user_id])
        self.carl = emu.add_user("carl", email="carl@support.example", real_name="Carl Agent")

    def connector(self) -> SlackConnector:
        config = SlackConfig(
            bot_token=self.emu.bot_token,
            signing_secret=self.emu.signing_secret,
            main_channel=self.main,
            base_url=self.emu.base_url,
        )
        return SlackConnector(config, limiter=SlackLimiter(enabled=False))


@pytest.fixture
def slack() -> Iterator[Slack]:
    with SlackEmulator(rate_limits="off") as emu:
        yield Slack(emu)
