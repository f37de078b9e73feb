"""A file download carries the bot token: it never goes to an environment proxy in clear.

``HTTP_PROXY`` / ``HTTPS_PROXY`` are honoured only for ``https://`` to a host that is not loopback (the proxy then
tunnels TLS and never sees the token); an ``http://`` base_url (the emulator, a local gateway) or a loopback host is
fetched directly. (Web API calls go through slack_sdk, which takes the proxy from the environment itself:
see docs/deploying.md, "Known limits".)
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.slack import SlackLimiter
from norbit_connectors.slack._transport import SlackTransport, environment_proxy_allowed
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..slack.conftest import Workspace


class ProxyListener:
    """A plain TCP server on 127.0.0.1 that records every connection made to it."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="proxy listener", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProxyListener]:
    server = ProxyListener()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, server.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


@pytest.mark.anyio
async def test_a_download_from_an_http_base_url_bypasses_the_environment_proxy(
    workspace: Workspace, proxy: ProxyListener
) -> None:
    emu = workspace.emu
    shared = emu.post_as_user(workspace.ann, workspace.main, "file", files=[("r.txt", b"report", "text/plain")])
    url = str(shared.event["files"][0]["url_private"])
    assert url.startswith("http://127.0.0.1:")
    transport = SlackTransport(workspace.config(), limiter=SlackLimiter(enabled=False))
    assert await transport.download(url, limit=1000) == b"report"
    assert proxy.connections == 0  # the bearer token never went to the proxy


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/a.txt", True),
        ("http://files.slack.com/files-pri/T1-F1/a.txt", False),
        ("http://127.0.0.1:8080/files/a", False),
        ("https://127.0.0.1:8443/files/a", False),
        ("https://localhost/files/a", False),
        ("https://[::1]/files/a", False),
        ("https://slack.example.internal/files/a", True),
        ("ftp://files.slack.com/a", False),
        ("not a url", False),
    ],
)
def test_the_environment_proxy_is_for_https_beyond_this_host_only(url: str, allowed: bool) -> None:
    assert environment_proxy_allowed(url) is allowed


@given(url=st.text(max_size=200))
def test_an_http_url_never_goes_through_the_environment_proxy(url: str) -> None:
    allowed = environment_proxy_allowed(url)
    assert isinstance(allowed, bool)
    if allowed:
        assert url.strip().lower().startswith("https://")
