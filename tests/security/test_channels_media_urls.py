"""Media URLs named by a webhook or an API answer: fetched only over https from public hosts (or from the
configured API's own origin), never followed through a redirect, and the token never sent anywhere else. A refused
file does not lose the message: it reaches Slack with a note saying what was not fetched."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import anyio
import pytest

from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..channels.conftest import Workspace
from ..channels.test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio

NOTE = "[image: not fetched, unsafe URL]"


class Listener:
    """A plain HTTP server on 127.0.0.1 that records every connection (and would serve a "secret" file)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


def hostile_urls(port: int) -> list[str]:
    # Only this machine's own addresses: even if a check failed, nothing would leave the machine. Private and
    # link-local ranges are covered by the URL rule's own tests (tests/foundation/test_urls.py), without a request.
    return [
        f"http://127.0.0.1:{port}/media",
        f"https://127.0.0.1:{port}/media",
        f"https://localhost:{port}/media",
        f"https://[::1]:{port}/media",
        f"https://[::ffff:127.0.0.1]:{port}/media",
        f"https://2130706433:{port}/media",  # 127.0.0.1 as one number: getaddrinfo resolves it
        f"https://user:pass@127.0.0.1:{port}/media",
        f"https://0.0.0.0:{port}/media",
        "file:///proc/self/environ",
        "ftp://example.com/x",
        "not a url",
    ]


async def test_whatsapp_media_urls_elsewhere_are_not_fetched(workspace: Workspace, listener: Listener) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, slack = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        conversation_id = f"whatsapp:{maria.wa_id}"
        urls = hostile_urls(listener.port)
        async with hub:
            for index, url in enumerate(urls):
                delivery = meta.whatsapp_file(
                    maria, "image", b"\xff\xd8 picture", mime_type="image/jpeg", url=url, caption=f"photo {index}"
                )
                assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):  # the code as it was retried these fetches for minutes
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(conversation_id)
            channel = await slack.channel_for(conversation_id)
            assert channel is not None
            posted = [m["text"] for m in workspace.emu.messages(channel)]
    assert listener.seen == []
    assert [e.message.text for e in transcript] == [f"photo {i}\n{NOTE}" for i in range(len(urls))]
    assert all(e.message.attachments == () for e in transcript)
    assert len(posted) == len(urls) and all(NOTE in text for text in posted)


async def test_whatsapp_media_redirect_is_not_followed(workspace: Workspace, listener: Listener) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        # The emulator's own origin is trusted (it is the configured base_url), and it answers with a redirect.
        url = f"{meta.root_url}/redirect?to=http://127.0.0.1:{listener.port}/media"
        async with hub:
            delivery = meta.whatsapp_file(maria, "image", b"x", mime_type="image/jpeg", url=url)
            assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):  # the code as it was retried these fetches for minutes
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert listener.seen == []
    assert [e.message.text for e in transcript] == [NOTE]


async def test_whatsapp_media_on_the_graph_origin_is_fetched_with_the_token(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            delivery = meta.whatsapp_media(maria, b"\xff\xd8 fine", caption="ok")
            assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert [(e.message.text, e.message.attachments[0].content) for e in transcript] == [("ok", b"\xff\xd8 fine")]


async def test_messenger_attachment_urls_elsewhere_are_not_fetched(workspace: Workspace, listener: Listener) -> None:
    with MetaEmulator() as meta:
        messenger = MessengerConnector(messenger_config(meta))
        hub, slack = workspace.hub(messenger)
        lea = meta.messenger_user("Lea")
        conversation_id = f"messenger:{lea.id}"
        urls = [*hostile_urls(listener.port), f"{meta.root_url}/redirect?to=http://127.0.0.1:{listener.port}/x"]
        async with hub:
            for url in urls:
                assert (await meta.messenger_attachment(lea, "image", url).deliver(messenger.handle_http)).status == 200
            with anyio.fail_after(30):  # the code as it was retried these fetches for minutes
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(conversation_id)
            channel = await slack.channel_for(conversation_id)
            assert channel is not None
            posted = [m["text"] for m in workspace.emu.messages(channel)]
    assert listener.seen == []
    assert [e.message.text for e in transcript] == [NOTE] * len(urls)
    assert len(posted) == len(urls) and all(NOTE in text for text in posted)
