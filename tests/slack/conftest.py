from __future__ import annotations

from collections.abc import Iterator

import pytest

from norbit_connectors.slack import SlackConfig
from norbit_connectors.testing._slack_emulator import SlackEmulator


class Workspace:
    """An emulated workspace with a main channel, a sales channel and two agents."""

    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        self.ann = emulator.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        self.bob = emulator.add_user("bob", email="bob@support.example", real_name="Bob Agent")
        self.main = emulator.add_channel("support", members=[emulator.bot_user_id, self.ann, self.bob])
        self.sales = emulator.add_channel("sales", members=[emulator.bot_user_id, self.ann])

    def config(self, **overrides: object) -> SlackConfig:
        values: dict[str, object] = {
            "bot_token": self.emu.bot_token,
            "signing_secret": self.emu.signing_secret,
            "main_channel": self.main,
            "department_channels": {"sales": self.sales},
            "agent_links": {"ann": self.ann, "bob": self.bob},
            "user_details": ("email", "location"),
            "base_url": self.emu.base_url,
        }
        values.update(overrides)
        return SlackConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)
