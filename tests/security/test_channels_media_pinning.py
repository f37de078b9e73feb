"""A media host is resolved once: the request goes to the address that was checked (a second, different answer
from DNS never reaches the connection), TLS still checks the certificate against the host's name, no proxy from
the environment sees the request, and the token goes only to Meta's hosts."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import anyio
import httpx
import pytest

from norbit_connectors._urls import UnsafeUrl
from norbit_connectors.channels._fetch import MediaClient, pinned_request, system_resolve
from norbit_connectors.channels._http import HttpClient
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.exceptions import TransportError
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..channels.conftest import Workspace
from ..channels.test_conformance import whatsapp_config
from .test_channels_media_urls import Listener

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.216.34"


class Rebinding:
    """A resolver that answers with a public address first and with 127.0.0.1 afterwards (a TTL-0 record)."""

    def __init__(self, first: Sequence[str] = (PUBLIC,), then: Sequence[str] = ("127.0.0.1",)) -> None:
        self.answers = [list(first), list(then)]
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers[min(len(self.asked), 2) - 1]


class Recorder:
    """An httpx.MockTransport that records each request it would have sent."""

    def __init__(self, body: bytes = b"picture") -> None:
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)
        self.body = body

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, content=self.body)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


async def test_the_request_goes_to_the_address_that_was_checked() -> None:
    resolve, recorder = Rebinding(), Recorder()
    media = MediaClient("test", resolve=resolve, transport=recorder.transport)
    got = await media.fetch("https://cdn.example.net/media/1.jpg?x=1", limit=1000, trusted=[])
    assert got == b"picture"
    assert resolve.asked == [("cdn.example.net", 443)]  # once: nothing asks again before connecting
    [request] = recorder.requests
    assert (request.url.scheme, request.url.host, request.url.port) == ("https", PUBLIC, None)
    assert request.url.raw_path == b"/media/1.jpg?x=1"
    assert request.headers["Host"] == "cdn.example.net"
    # The TLS layer names the host (server name indication and the certificate's check), not the address.
    assert request.extensions["sni_hostname"] == "cdn.example.net"


async def test_a_port_other_than_443_stays_in_the_host_header() -> None:
    resolve, recorder = Rebinding(first=("2606:2800:220:1:248:1893:25c8:1946",)), Recorder()
    media = MediaClient("test", resolve=resolve, transport=recorder.transport)
    await media.fetch("https://cdn.example.net:8443/a", limit=1000, trusted=[])
    [request] = recorder.requests
    assert request.url.host == "2606:2800:220:1:248:1893:25c8:1946" and request.url.port == 8443
    assert request.headers["Host"] == "cdn.example.net:8443"


async def test_a_host_with_one_local_address_is_refused_before_any_connection(listener: Listener) -> None:
    resolve = Rebinding(first=(PUBLIC, "127.0.0.1"))
    media = MediaClient("test", resolve=resolve)
    with pytest.raises(UnsafeUrl, match="local address"):
        await media.fetch(f"https://cdn.example.net:{listener.port}/a", limit=1000, trusted=[])
    assert listener.seen == []


async def test_the_real_resolver_is_used_and_its_answer_checked(listener: Listener) -> None:
    # "localhost" is refused by name before any lookup; here the system's lookup itself (from /etc/hosts) is checked.
    with pytest.raises(UnsafeUrl, match="local address"):
        await pinned_request("https://localhost/a", "localhost", 443, system_resolve, "test")
    client = HttpClient("test")
    client.media.resolve = Rebinding(first=("127.0.0.1",))
    with pytest.raises(UnsafeUrl, match="local address"):
        await client.fetch(f"https://media.example.com:{listener.port}/a", limit=1000, trusted=[])
    assert listener.seen == []


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"])
async def test_no_proxy_from_the_environment_sees_a_download(
    monkeypatch: pytest.MonkeyPatch, listener: Listener, variable: str
) -> None:
    origin = Listener()
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(variable, f"http://127.0.0.1:{listener.port}")
        client = HttpClient("test")
        await client.open()
        try:
            # A trusted http:// origin (the configured API, here a local one) whose path holds a bot token.
            url = f"http://127.0.0.1:{origin.port}/file/bot123:SECRET/photo.jpg"
            got = await client.fetch(url, limit=1000, trusted=[f"http://127.0.0.1:{origin.port}"])
        finally:
            await client.close()
    finally:
        origin.close()
    assert got == b"secret"
    assert listener.seen == []
    assert len(origin.seen) == 1 and origin.seen[0].startswith(b"GET /file/bot123:SECRET/photo.jpg ")


async def test_a_configured_proxy_is_used(listener: Listener) -> None:
    media = MediaClient("test", proxy=f"http://127.0.0.1:{listener.port}")
    got = await media.fetch("http://127.0.0.1:9/x", limit=1000, trusted=["http://127.0.0.1:9"])
    assert got == b"secret" and listener.seen and listener.seen[0].startswith(b"GET http://127.0.0.1:9/x ")


async def test_the_token_goes_only_to_the_token_origins() -> None:
    resolve, recorder = Rebinding(then=(PUBLIC,)), Recorder()
    client = HttpClient("test")
    client.media.resolve = resolve
    client.media.transport = recorder.transport
    common = {"limit": 1000, "trusted": ["https://graph.example"], "token": "EAAtoken"}
    origins = ["https://graph.example", "https://lookaside.fbsbx.com"]
    await client.fetch("https://cdn.example.net/a", token_origins=origins, **common)  # type: ignore[arg-type]
    await client.fetch("https://lookaside.fbsbx.com/b", token_origins=origins, **common)  # type: ignore[arg-type]
    await client.fetch("https://lookaside.fbsbx.com.evil.example/c", token_origins=origins, **common)  # type: ignore[arg-type]
    assert [(r.headers["Host"], r.headers.get("Authorization")) for r in recorder.requests] == [
        ("cdn.example.net", None),
        ("lookaside.fbsbx.com", "Bearer EAAtoken"),
        ("lookaside.fbsbx.com.evil.example", None),
    ]


class Dripping:
    """A local HTTP server that announces a large body and then sends one byte every 50 ms."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not self.stop.wait(0.05):
                    conn.sendall(b"x")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


async def test_a_download_that_never_ends_is_cut_by_the_overall_limit() -> None:
    server = Dripping()
    try:
        media = MediaClient("test", timeout=5.0, total_timeout=0.3)
        origin = f"http://127.0.0.1:{server.port}"
        with pytest.raises(TransportError, match="took longer than"):
            await media.fetch(f"{origin}/slow", limit=1 << 20, trusted=[origin])
    finally:
        server.close()


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


async def test_whatsapp_media_on_a_name_that_resolves_locally_is_not_fetched(
    workspace: Workspace, listener: Listener
) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        whatsapp.http.media.resolve = Rebinding(first=("127.0.0.1",))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        url = f"https://media.example.com:{listener.port}/x.jpg"
        async with hub:
            delivery = meta.whatsapp_file(maria, "image", b"x", mime_type="image/jpeg", url=url, caption="hi")
            assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert listener.seen == []
    assert [e.message.text for e in transcript] == ["hi\n[image: not fetched, unsafe URL]"]


async def test_whatsapp_sends_its_token_to_meta_s_media_host_only(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        recorder = Recorder(b"\xff\xd8 picture")
        whatsapp.http.media.resolve = Rebinding(then=(PUBLIC,))
        whatsapp.http.media.transport = recorder.transport
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            for host in ("cdn.example.net", "lookaside.fbsbx.com"):
                url = f"https://{host}/media/1.jpg"
                delivery = meta.whatsapp_file(maria, "image", b"x", mime_type="image/jpeg", url=url, caption=host)
                assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    sent = [(r.headers["Host"], r.headers.get("Authorization")) for r in recorder.requests]
    assert sent == [("cdn.example.net", None), ("lookaside.fbsbx.com", f"Bearer {meta.access_token}")]
    assert [a.content for e in transcript for a in e.message.attachments] == [b"\xff\xd8 picture"] * 2


class _Drip(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            await anyio.sleep(0.02)
            yield b"x"


async def test_a_never_ending_download_relays_the_message_with_a_note(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        whatsapp.http.media.resolve = Rebinding(then=(PUBLIC,))
        whatsapp.http.media.transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=_Drip()))
        whatsapp.http.media.total_timeout = 0.2
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            url = "https://cdn.example.net/slow.jpg"
            delivery = meta.whatsapp_file(maria, "image", b"x", mime_type="image/jpeg", url=url, caption="hello")
            assert (await delivery.deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert [e.message.text for e in transcript] == ["hello\n[image: not fetched (network error)]"]


async def test_of_several_checked_addresses_an_ipv4_one_is_used() -> None:
    resolve, recorder = Rebinding(first=("2606:2800:220:1:248:1893:25c8:1946", PUBLIC)), Recorder()
    media = MediaClient("test", resolve=resolve, transport=recorder.transport)
    await media.fetch("https://cdn.example.net/a", limit=1000, trusted=[])
    assert [r.url.host for r in recorder.requests] == [PUBLIC]
