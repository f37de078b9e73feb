"""The sandbox against DNS rebinding and connection floods.

A page on ``evil.example`` whose name an attacker re-points at 127.0.0.1 can make the browser send requests to the
sandbox; they arrive with ``Host: evil.example:<port>`` (and, for a POST, ``Origin: http://evil.example:<port>``).
The sandbox answers only requests addressed to the loopback address and port it serves.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.sandbox import SandboxServer
from norbit_connectors.sandbox._hosts import host_allowed, loopback_hosts, origin_allowed


@pytest.fixture
def server(tmp_path: Path, anyio_backend: str) -> Iterator[SandboxServer]:
    with SandboxServer(data=str(tmp_path / "sandbox.sqlite3"), backend=anyio_backend) as running:  # type: ignore[arg-type]
        yield running


def port_of(server: SandboxServer) -> int:
    return int(server.url.rstrip("/").rsplit(":", 1)[1])


def raw_request(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    """Send ``request`` on a fresh connection; the status, the head and the body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def test_the_page_and_the_api_answer_on_every_loopback_name(server: SandboxServer) -> None:
    port = port_of(server)
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}"):
        with httpx.Client(base_url=server.url, headers={"Host": host}, timeout=30) as http:
            page = http.get("/")
            assert page.status_code == 200 and "norbit" in page.text, host
            assert http.get("/api/state").json()["mode"] == "emulator", host
            origin = f"http://{host}"
            posted = http.post("/api/chatbot", json={"enabled": True}, headers={"Origin": origin})
            assert posted.status_code == 200 and posted.json() == {"chatbot": True}, host
    # A POST without Origin (curl, a script) is fine too.
    assert httpx.post(server.url + "api/chatbot", json={"enabled": False}).json() == {"chatbot": False}


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example:{port}",
        "127.0.0.1:{other}",
        "localhost",
        "127.0.0.1",
        "",
    ],
)
def test_a_foreign_host_is_refused(server: SandboxServer, host: str) -> None:
    port = port_of(server)
    host = host.format(port=port, other=port + 1 if port < 65535 else port - 1)
    for path in ("/", "/static/app.js", "/api/state?customer=Zo%C3%AB"):
        status, head, body = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status == 403, (host, path, head)
        assert b"text/plain" in head and b"norbit" not in body and b"customers" not in body
        assert b"127.0.0.1" in body and len(body) < 300


def test_a_request_without_host_is_refused(server: SandboxServer) -> None:
    status, _, _ = raw_request(port_of(server), b"GET /api/state HTTP/1.0\r\n\r\n")
    assert status == 403


def test_a_foreign_host_cannot_act(server: SandboxServer) -> None:
    port = port_of(server)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        refused = http.post(
            "/api/customer/message",
            json={"customer": "Mallory", "text": "planted"},
            headers={"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
        )
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/plain")
        assert http.get("/api/state").json()["customers"] == []  # nothing was done


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://evil.example:{port}",
        "https://127.0.0.1:{port}",
        "http://127.0.0.1:{other}",
        "http://127.0.0.1",
        "http://127.0.0.1:{port}.evil.example",
        "null",
        "",
    ],
)
def test_a_post_from_a_foreign_origin_is_refused(server: SandboxServer, origin: str) -> None:
    port = port_of(server)
    origin = origin.format(port=port, other=port + 1 if port < 65535 else port - 1)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        refused = http.post(
            "/api/customer/message", json={"customer": "Mallory", "text": "planted"}, headers={"Origin": origin}
        )
        assert refused.status_code == 403, (origin, refused.text)
        assert refused.headers["content-type"].startswith("text/plain") and len(refused.content) < 300
        assert http.get("/api/state").json()["customers"] == []
        # The connection is closed after a refusal, so a body left unread never becomes the next request.
        assert refused.headers.get("connection") == "close"


def test_slacks_request_url_answers_through_a_tunnel(server: SandboxServer) -> None:
    # Slack reaches /slack/events through a tunnel that keeps its own Host; the signature guards that path.
    port = port_of(server)
    unsigned = httpx.post(server.url + "slack/events", content=b"{}", headers={"Host": "abc.tunnel.example"})
    assert unsigned.status_code == 401
    # Nothing else is reachable that way.
    status, _, _ = raw_request(port, b"GET /slack/events HTTP/1.1\r\nHost: abc.tunnel.example\r\n\r\n")
    assert status == 403


def test_a_hundred_connections_at_once_are_all_answered(tmp_path: Path, anyio_backend: str) -> None:
    server = SandboxServer(data=str(tmp_path / "busy.sqlite3"), backend=anyio_backend)  # type: ignore[arg-type]
    server.start(serve_in_thread=False)
    serving: threading.Thread | None = None
    conns: list[socket.socket] = []
    try:
        port = port_of(server)
        # Bound, not yet accepting: every connection must still be taken into the listen queue, as when the
        # accepting thread is busy for a moment while many clients connect at once.
        for _ in range(100):
            conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            conn.settimeout(2.0)
            conns.append(conn)
            conn.connect(("127.0.0.1", port))
        for conn in conns:
            conn.sendall(f"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        for conn in conns:
            conn.settimeout(30)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]

        # And a hundred real clients at once, while it serves.
        def fetch(index: int) -> int:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                return http.get("/api/state", params={"customer": f"c{index}"}).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(fetch, range(100)))
        assert statuses == [200] * 100
        assert time.monotonic() - started < 60
    finally:
        for conn in conns:
            conn.close()
        server.close()
    if serving is not None:
        serving.join(timeout=10)
        assert not serving.is_alive()


PORTS = st.integers(min_value=1, max_value=65535)


@given(host=st.text(max_size=60), port=PORTS)
def test_host_check_never_fails_and_admits_only_loopback(host: str, port: int) -> None:
    allowed = host_allowed(host, port)
    assert allowed == (host.lower() in loopback_hosts(port))


@given(origin=st.text(max_size=60), port=PORTS)
def test_origin_check_never_fails_and_admits_only_loopback(origin: str, port: int) -> None:
    allowed = origin_allowed(origin, port)
    assert allowed == (origin.lower() in {f"http://{h}" for h in loopback_hosts(port)})


def test_the_checks_by_example() -> None:
    assert loopback_hosts(8000) == frozenset({"127.0.0.1:8000", "localhost:8000", "[::1]:8000"})
    assert loopback_hosts(80) >= {"127.0.0.1", "localhost", "[::1]"}
    assert host_allowed("LOCALHOST:8000", 8000) and not host_allowed(None, 8000)
    assert origin_allowed(None, 8000) and origin_allowed("http://[::1]:8000", 8000)
    assert not origin_allowed("http://localhost:8000/", 8000) and not host_allowed("localhost:8000 ", 8000)
