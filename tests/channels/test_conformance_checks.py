"""The conformance suite's own checks: a peer without message_kinds() fails with a message saying what to do, and
a known kind that arrives as the generic "[unsupported message]" line fails."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.hub import Hub
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._telegram import TelegramEmulator
from norbit_connectors.testing._webhook import Webhook
from norbit_connectors.testing.connector_conformance import (
    AgentDesk,
    ConformancePeer,
    ConnectorConformance,
    MessageKind,
    TelegramPeer,
)

pytestmark = pytest.mark.anyio


class OlderPeer(TelegramPeer):
    """A peer written before message_kinds() existed."""

    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        return ConformancePeer.message_kinds(self)


class MislabelledPeer(TelegramPeer):
    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        emu, who = self.emulator, self.customer
        return {
            "text": emu.send_text(who, "hello"),
            "unknown": emu.send_message(who, {"hologram": {}}),
            "game": emu.send_message(who, {"game": {"title": "Chess"}}),  # not rendered: must fail
        }


def _setup(peer: TelegramPeer) -> tuple[Hub, TelegramConnector, AgentDesk]:
    emu = peer.emulator
    connector = TelegramConnector(
        TelegramConfig(bot_token=emu.bot_token, secret_token=emu.secret_token, base_url=emu.base_url)
    )
    desk = AgentDesk()

    async def on_reply(reply: object) -> None:
        return None

    hub = Hub(store=MemoryStore(), connectors=[desk, connector], on_agent_reply=on_reply, poll_interval=0.02)
    return hub, connector, desk


async def test_a_peer_without_message_kinds_fails_with_a_clear_message() -> None:
    with TelegramEmulator() as emulator:
        peer = OlderPeer(emulator)  # no TypeError at construction
        hub, connector, desk = _setup(peer)
        with pytest.raises(AssertionError, match=r"must offer at least 'text' and 'unknown'.*Implement it"):
            await ConnectorConformance().test_every_message_kind_becomes_a_customer_message(hub, connector, desk, peer)


async def test_a_known_kind_arriving_as_unsupported_fails() -> None:
    with TelegramEmulator() as emulator:
        peer = MislabelledPeer(emulator)
        hub, connector, desk = _setup(peer)
        with pytest.raises(AssertionError, match=r"game: '\[unsupported message: game\]'"):
            await ConnectorConformance().test_every_message_kind_becomes_a_customer_message(hub, connector, desk, peer)
