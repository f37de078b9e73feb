"""The customer-side connector conformance suite: what every connector for a customer app must do, as pytest tests.

Reuse it for your own connector: give it the connector and a *peer* that plays the app's side (builds signed
webhook deliveries and reads what the connector sent)::

    import pytest
    from norbit_connectors.testing.connector_conformance import ConnectorConformance, ConformancePeer

    class TestMyConnector(ConnectorConformance):
        @pytest.fixture
        def peer(self):
            with MyAppEmulator() as app:
                yield MyPeer(app)            # implements ConformancePeer

        @pytest.fixture
        def connector(self, peer):
            return MyConnector(MyConfig(..., base_url=peer.app.base_url))   # a fresh one per test

Each test runs a real :class:`~norbit_connectors.hub.Hub` on a MemoryStore with the connector and a recording
agent-side connector (:class:`AgentDesk`) that stands for Slack. The tests are ``@pytest.mark.anyio``
coroutines: the project running them provides the ``anyio_backend`` fixture.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import pytest
from attrs import frozen

from .._connector import Connector, HttpResponse
from .._events import CustomerMessage, HubEvent
from .._models import AgentReply, Delivery, Message, converter
from ..hub import Hub
from ..store import Batch, Job, MemoryStore
from ._meta import MetaEmulator, MetaUser, WhatsAppCustomer
from ._telegram import TelegramCustomer, TelegramEmulator
from ._webhook import Webhook

__all__ = [
    "AgentDesk",
    "ConformancePeer",
    "ConnectorConformance",
    "MessageKind",
    "MessengerPeer",
    "TelegramPeer",
    "WhatsAppPeer",
]

#: Bodies no connector may answer with 2xx when signed correctly, nor ever with 5xx.
NOT_JSON: tuple[bytes, ...] = (b"", b"{", b"not json", b"\xff\xfe\x00", b'{"a": 1', b"[1, 2")
#: JSON that is no platform's webhook: 2xx (ignored) or 4xx, never 5xx, and nothing accepted.
ODD_JSON: tuple[bytes, ...] = (
    b"null",
    b"[]",
    b"42",
    b'"text"',
    b"{}",
    b'{"entry": 5}',
    b'{"object": "page", "entry": [1]}',
    b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": 3}]}]}',
    b'{"update_id": "x", "message": []}',
    b'{"update_id": 1, "message": {"chat": {}}}',
)


class ConformancePeer(abc.ABC):
    """The customer app's side of the conversation, for one customer."""

    @property
    @abc.abstractmethod
    def conversation_id(self) -> str:
        """The conversation id the connector gives this customer's chat."""

    @abc.abstractmethod
    def customer_text(self, text: str) -> Webhook:
        """A correctly signed webhook delivery: the customer wrote ``text``."""

    @abc.abstractmethod
    def forged(self, delivery: Webhook) -> Webhook:
        """``delivery`` with a wrong (or missing) signature."""

    @abc.abstractmethod
    def signed(self, body: bytes) -> Webhook:
        """Any body, signed as the app signs its webhooks."""

    @abc.abstractmethod
    def received_texts(self) -> list[str]:
        """The texts the connector sent to the customer, oldest first."""

    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        """A correctly signed delivery of one new customer message of every kind the platform has (text, picture,
        voice, sticker, location, contact, ...: the more the better), by name; at least ``"text"`` and
        ``"unknown"`` (a kind the connector does not know). Each must reach the agents as something readable; wrap
        one in :class:`MessageKind` to say what it must bring (a file) or that the generic "[unsupported message]"
        line is the right rendering of it. The default offers none, which fails the conformance test."""
        return {}


@frozen(kw_only=True)
class MessageKind:
    """One entry of :meth:`ConformancePeer.message_kinds`: ``delivery``; ``file``: the message must arrive with a
    file with content; ``generic``: the platform itself says it is unsupported, so "[unsupported message...]" is
    the right line for it (every other kind but "unknown" must be rendered as what it is)."""

    delivery: Webhook
    file: bool = False
    generic: bool = False


def _file(delivery: Webhook) -> MessageKind:
    return MessageKind(delivery=delivery, file=True)


def _generic(delivery: Webhook) -> MessageKind:
    return MessageKind(delivery=delivery, generic=True)


class AgentDesk(Connector):
    """An agent-side connector that records what the hub sends to agents and can answer as an agent."""

    name: ClassVar[str] = "desk"
    role: ClassVar[Any] = "agent"

    def __init__(self) -> None:
        self.received: list[CustomerMessage] = []

    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        if isinstance(event, CustomerMessage):
            self.received.append(event)
        return None

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        return HttpResponse.text(404, "no webhook")

    async def answer(self, conversation_id: str, text: str) -> None:
        """An agent answers ``text`` in the conversation (as an agent-side connector reports it)."""
        reply = AgentReply(
            conversation_id=conversation_id,
            message=Message(id=f"desk-{uuid.uuid4().hex}", text=text),
            agent=None,
            slack_user_id=None,
        )
        job = self.context.hub_job(
            "agent_reply", conversation_id, {"reply": converter.unstructure(reply), "origin": self.name}
        )
        await self.context.accept_inbound(self.name, reply.message.id, [job])


class ConnectorConformance:
    """Subclass with ``connector`` and ``peer`` fixtures (see the module docstring)."""

    @pytest.fixture
    def desk(self) -> AgentDesk:
        return AgentDesk()

    @pytest.fixture
    def hub_replies(self) -> list[AgentReply]:
        return []

    @pytest.fixture
    def hub(self, connector: Connector, desk: AgentDesk, hub_replies: list[AgentReply]) -> Hub:
        async def on_reply(reply: AgentReply) -> Delivery | None:
            hub_replies.append(reply)
            return None

        return Hub(
            store=MemoryStore(),
            connectors=[desk, connector],
            on_agent_reply=on_reply,
            retry_base=0.01,
            poll_interval=0.02,
        )

    @pytest.mark.anyio
    async def test_is_a_customer_connector(self, connector: Connector) -> None:
        assert connector.role == "customer"
        assert connector.name and connector.name != "hub"

    @pytest.mark.anyio
    async def test_inbound_text_becomes_a_customer_message(
        self, hub: Hub, connector: Connector, desk: AgentDesk, peer: ConformancePeer
    ) -> None:
        async with hub:
            response = await peer.customer_text("Hello, I need help").deliver(connector.handle_http)
            assert 200 <= response.status < 300
            await hub.wait_idle()
            state = await hub.conversation(peer.conversation_id)
        assert [e.message.text for e in desk.received] == ["Hello, I need help"]
        event = desk.received[0]
        assert event.conversation.id == peer.conversation_id
        assert event.conversation.source == connector.name
        assert state is not None and state.conversation.source == connector.name

    @pytest.mark.anyio
    async def test_forged_signature_is_refused(
        self, hub: Hub, connector: Connector, desk: AgentDesk, peer: ConformancePeer
    ) -> None:
        async with hub:
            response = await peer.forged(peer.customer_text("forged")).deliver(connector.handle_http)
            assert 400 <= response.status < 500
            await hub.wait_idle()
            assert await hub.conversation(peer.conversation_id) is None
        assert desk.received == []

    @pytest.mark.anyio
    async def test_malformed_bodies_are_refused_without_a_server_error(
        self, hub: Hub, connector: Connector, desk: AgentDesk, peer: ConformancePeer
    ) -> None:
        async with hub:
            for body in NOT_JSON:
                response = await peer.signed(body).deliver(connector.handle_http)
                assert response.status == 400, body
            for body in ODD_JSON:
                response = await peer.signed(body).deliver(connector.handle_http)
                assert 200 <= response.status < 500, body
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        assert desk.received == []

    @pytest.mark.anyio
    async def test_every_message_kind_becomes_a_customer_message(
        self, hub: Hub, connector: Connector, desk: AgentDesk, peer: ConformancePeer
    ) -> None:
        offered = peer.message_kinds()
        missing = sorted({"text", "unknown"} - set(offered))
        assert not missing, (
            f"{type(peer).__name__}.message_kinds() must offer at least 'text' and 'unknown' (a kind the connector "
            f"does not know); missing: {', '.join(missing)}. Implement it: one signed delivery per kind of message."
        )
        kinds = {n: k if isinstance(k, MessageKind) else MessageKind(delivery=k) for n, k in offered.items()}
        async with hub:
            for name, kind in kinds.items():
                before = len(desk.received)
                response = await kind.delivery.deliver(connector.handle_http)
                assert 200 <= response.status < 300, (name, response.status)
                with anyio.fail_after(30):
                    await hub.wait_idle()
                arrived = desk.received[before:]
                # Accepted with a 2xx: exactly one customer message, with something the agents can read.
                assert len(arrived) == 1, f"{name}: {len(arrived)} customer messages"
                message = arrived[0].message
                assert message.text.strip() or message.attachments, f"{name}: an empty message"
                assert arrived[0].conversation.id == peer.conversation_id, name
                if kind.file:
                    assert any(a.content for a in message.attachments), f"{name}: no file with content"
                if name != "unknown" and not kind.generic:
                    assert "[unsupported message" not in message.text, f"{name}: {message.text!r}"
            assert await hub.dead_letters() == []

    @pytest.mark.anyio
    async def test_duplicate_delivery_makes_one_message(
        self, hub: Hub, connector: Connector, desk: AgentDesk, peer: ConformancePeer
    ) -> None:
        delivery = peer.customer_text("only once")
        async with hub:
            for _ in range(3):
                response = await delivery.deliver(connector.handle_http)
                assert 200 <= response.status < 300
            await hub.wait_idle()
            transcript = await hub.store.transcript(peer.conversation_id)
        assert [e.message.text for e in desk.received] == ["only once"]
        assert [e.message.text for e in transcript] == ["only once"]

    @pytest.mark.anyio
    async def test_agent_reply_reaches_the_customer(
        self,
        hub: Hub,
        connector: Connector,
        desk: AgentDesk,
        peer: ConformancePeer,
        hub_replies: list[AgentReply],
    ) -> None:
        async with hub:
            await peer.customer_text("Hi there").deliver(connector.handle_http)
            await hub.wait_idle()
            await desk.answer(peer.conversation_id, "Hello, how can we help?")
            await hub.wait_idle()
            assert await hub.dead_letters() == []
        assert peer.received_texts() == ["Hello, how can we help?"]
        assert [r.message.text for r in hub_replies] == ["Hello, how can we help?"]


# -- peers for the built-in connectors' emulators -------------------------------------------------------


class TelegramPeer(ConformancePeer):
    def __init__(self, emulator: TelegramEmulator, customer: TelegramCustomer | None = None) -> None:
        self.emulator = emulator
        self.customer = customer or emulator.add_customer("Conformance", username="conformance")

    @property
    def conversation_id(self) -> str:
        return f"telegram:{self.customer.chat_id}"

    def customer_text(self, text: str) -> Webhook:
        return self.emulator.send_text(self.customer, text)

    def forged(self, delivery: Webhook) -> Webhook:
        return Webhook(body=delivery.body, headers={"Content-Type": "application/json"} | _wrong_tg(delivery))

    def signed(self, body: bytes) -> Webhook:
        return self.emulator.update(body)

    def received_texts(self) -> list[str]:
        return [m.text or "" for m in self.emulator.sent_to(self.customer) if m.kind == "text"]

    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        emu, who = self.emulator, self.customer
        return {
            "text": emu.send_text(who, "hello"),
            "photo": _file(emu.send_photo(who, b"\xff\xd8 photo")),
            "document": _file(emu.send_document(who, b"%PDF", file_name="a.pdf", mime_type="application/pdf")),
            "voice": _file(emu.send_voice(who, b"OggS voice", duration=7)),
            "audio": _file(emu.send_audio(who, b"ID3 audio", duration=185, performer="Band", title="Song")),
            "video": _file(emu.send_video(who, b"video", duration=12)),
            "video_note": _file(emu.send_video_note(who, b"note", duration=5)),
            "animation": _file(emu.send_animation(who, b"gif")),
            "sticker": _file(emu.send_sticker(who, b"RIFF webp", emoji="😀")),
            "animated sticker": emu.send_sticker(who, b"tgs", emoji=None, animated=True),
            "location": emu.send_location(who, 52.52, 13.405),
            "live location": emu.send_location(who, 52.52, 13.405, live_period=900),
            "venue": emu.send_venue(who, 52.5163, 13.3777, title="Brandenburger Tor", address="Pariser Platz"),
            "contact": emu.send_contact(who, "+49 30 1234567", "Ann", last_name="Smith"),
            "poll": emu.send_poll(who, "Which day?", ["Monday", "Tuesday"]),
            "dice": emu.send_dice(who),
            "unknown": emu.send_message(who, {"game": {"title": "A game"}}),
            "nothing": _generic(emu.send_message(who, {})),
        }


def _wrong_tg(delivery: Webhook) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": "wrong-" + uuid.uuid4().hex}


class WhatsAppPeer(ConformancePeer):
    def __init__(self, emulator: MetaEmulator, customer: WhatsAppCustomer | None = None) -> None:
        self.emulator = emulator
        self.customer = customer or emulator.whatsapp_customer("Conformance")

    @property
    def conversation_id(self) -> str:
        return f"whatsapp:{self.customer.wa_id}"

    def customer_text(self, text: str) -> Webhook:
        return self.emulator.whatsapp_text(self.customer, text)

    def forged(self, delivery: Webhook) -> Webhook:
        return Webhook(body=delivery.body, headers=self.emulator.sign(delivery.body, secret="not-the-app-secret"))

    def signed(self, body: bytes) -> Webhook:
        return self.emulator.signed(body)

    def received_texts(self) -> list[str]:
        return [m.text or "" for m in self.emulator.sent_to(self.customer) if m.type == "text"]

    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        emu, who = self.emulator, self.customer
        return {
            "text": emu.whatsapp_text(who, "hello"),
            "image": _file(emu.whatsapp_media(who, b"\xff\xd8 photo")),
            "document": _file(
                emu.whatsapp_file(who, "document", b"%PDF", mime_type="application/pdf", filename="a.pdf")
            ),
            "voice": _file(emu.whatsapp_file(who, "audio", b"OggS", mime_type="audio/ogg; codecs=opus", voice=True)),
            "audio": _file(emu.whatsapp_file(who, "audio", b"ID3", mime_type="audio/mpeg")),
            "video": _file(emu.whatsapp_file(who, "video", b"mp4", mime_type="video/mp4", caption="look")),
            "sticker": _file(emu.whatsapp_file(who, "sticker", b"RIFF", mime_type="image/webp", animated=False)),
            "location": emu.whatsapp_location(who, 52.52, 13.405, name="Office", address="Main St 1"),
            "contacts": emu.whatsapp_contacts(who, ("Ann Smith", "+49 30 1234567"), ("Bob", "+1 555 0100")),
            "reaction": emu.whatsapp_reaction(who, "wamid.HBgLNDQ3OTAwMDAwMDAxFQIAERgSQ0FGRTAw", "👍"),
            "order": emu.whatsapp_order(who, [("SKU-1", 2, 12.5, "EUR")], text="for Friday"),
            "button": emu.whatsapp_message(who, "button", {"button": {"text": "Yes", "payload": "yes"}}),
            "interactive": emu.whatsapp_message(
                who,
                "interactive",
                {"interactive": {"type": "list_reply", "list_reply": {"id": "1", "title": "Option 1"}}},
            ),
            "unsupported": _generic(emu.whatsapp_unsupported(who)),
            "unknown": emu.whatsapp_message(who, "hologram", {"hologram": {"id": "1"}}),
        }


class MessengerPeer(ConformancePeer):
    def __init__(self, emulator: MetaEmulator, user: MetaUser | None = None) -> None:
        self.emulator = emulator
        self.user = user or emulator.messenger_user("Conformance")

    @property
    def conversation_id(self) -> str:
        return f"{self.user.platform}:{self.user.id}"

    def customer_text(self, text: str) -> Webhook:
        return self.emulator.messenger_text(self.user, text)

    def forged(self, delivery: Webhook) -> Webhook:
        return Webhook(body=delivery.body, headers=self.emulator.sign(delivery.body, secret="not-the-app-secret"))

    def signed(self, body: bytes) -> Webhook:
        return self.emulator.signed(body)

    def received_texts(self) -> list[str]:
        return [m.text or "" for m in self.emulator.sent_to(self.user) if m.type == "text"]

    def message_kinds(self) -> Mapping[str, Webhook | MessageKind]:
        emu, who = self.emulator, self.user
        cdn = f"{emu.root_url}/cdn/missing"
        return {
            "text": emu.messenger_text(who, "hello"),
            "image": _file(emu.messenger_image(who, b"\xff\xd8 photo")),
            "sticker": _file(emu.messenger_sticker(who, b"\x89PNG like")),
            "location": emu.messenger_location(who, 52.52, 13.405),
            "fallback": emu.messenger_fallback(who, "A shared page", "https://example.com/page"),
            "share": emu.messenger_message(who, {"attachments": [{"type": "share", "payload": {"url": cdn}}]}),
            "unknown": emu.messenger_message(who, {"attachments": [{"type": "hologram", "payload": {}}]}),
            "unsupported": _generic(emu.messenger_message(who, {"is_unsupported": True})),
            "nothing": _generic(emu.messenger_message(who, {})),
        }
