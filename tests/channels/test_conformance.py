from __future__ import annotations

from collections.abc import Iterator

import pytest

from norbit_connectors.channels.messenger import MessengerConfig, MessengerConnector
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConfig, WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._telegram import TelegramEmulator
from norbit_connectors.testing.connector_conformance import (
    ConnectorConformance,
    MessengerPeer,
    TelegramPeer,
    WhatsAppPeer,
)


class TestTelegramConformance(ConnectorConformance):
    @pytest.fixture
    def peer(self) -> Iterator[TelegramPeer]:
        with TelegramEmulator() as emulator:
            yield TelegramPeer(emulator)

    @pytest.fixture
    def connector(self, peer: TelegramPeer) -> TelegramConnector:
        emu = peer.emulator
        return TelegramConnector(
            TelegramConfig(bot_token=emu.bot_token, secret_token=emu.secret_token, base_url=emu.base_url)
        )


def whatsapp_config(emu: MetaEmulator, **kw: object) -> WhatsAppConfig:
    values: dict[str, object] = {
        "access_token": emu.access_token,
        "app_secret": emu.app_secret,
        "verify_token": emu.verify_token,
        "phone_number_id": emu.phone_number_id,
        "base_url": emu.base_url,
    }
    values.update(kw)
    return WhatsAppConfig(**values)  # type: ignore[arg-type]


def messenger_config(emu: MetaEmulator, **kw: object) -> MessengerConfig:
    values: dict[str, object] = {
        "page_access_token": emu.page_access_token,
        "app_secret": emu.app_secret,
        "verify_token": emu.verify_token,
        "page_id": emu.page_id,
        "base_url": emu.base_url,
    }
    values.update(kw)
    return MessengerConfig(**values)  # type: ignore[arg-type]


class TestWhatsAppConformance(ConnectorConformance):
    @pytest.fixture
    def peer(self) -> Iterator[WhatsAppPeer]:
        with MetaEmulator() as emulator:
            yield WhatsAppPeer(emulator)

    @pytest.fixture
    def connector(self, peer: WhatsAppPeer) -> WhatsAppConnector:
        return WhatsAppConnector(whatsapp_config(peer.emulator))


class TestMessengerConformance(ConnectorConformance):
    @pytest.fixture
    def peer(self) -> Iterator[MessengerPeer]:
        with MetaEmulator() as emulator:
            yield MessengerPeer(emulator)

    @pytest.fixture
    def connector(self, peer: MessengerPeer) -> MessengerConnector:
        return MessengerConnector(messenger_config(peer.emulator))


class TestInstagramConformance(TestMessengerConformance):
    @pytest.fixture
    def peer(self) -> Iterator[MessengerPeer]:
        with MetaEmulator() as emulator:
            yield MessengerPeer(emulator, emulator.messenger_user("Insta", platform="instagram"))

    @pytest.fixture
    def connector(self, peer: MessengerPeer) -> MessengerConnector:
        return MessengerConnector(messenger_config(peer.emulator, instagram_id=peer.emulator.instagram_id))
