"""The sandbox against DNS rebinding and connection floods.

A page on ``evil.example`` whose name an attacker re-points at 127.0.0.1 can make the browser send requests to the
sandbox; they arrive with ``Host: evil.example:<port>`` (and, for a POST, ``Origin: http://evil.example:<port>``).
The sandbox answers only requests addressed to the loopback address and port it serves.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from norbit_connectors.exceptions import ConfigurationError
from norbit_connectors.sandbox import SandboxServer
from norbit_connectors.sandbox._hosts import (
    allowed_hosts,
    host_allowed,
    origin_allowed,
    origin_form,
    parse_allowed_host,
    parse_allowed_hosts,
)


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


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/api/state",
        "http://evil.example:{port}/api/state?customer=x",
        "HTTP://evil.example/",
        "http://127.0.0.1:{port}/api/state",
        "https://localhost:{port}/static/app.js",
        "//evil.example/api/state",
        "evil.example:{port}",
        "api/state",
        "*",
    ],
)
def test_a_target_other_than_a_path_is_refused(server: SandboxServer, target: str) -> None:
    # An absolute-form target's authority replaces Host (RFC 9112, 3.2.2): the Host header alone says nothing
    # about where such a request is addressed, so only origin-form targets ("/path?query") are answered.
    port = port_of(server)
    target = target.format(port=port)
    status, head, body = raw_request(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert status == 403, (target, head)
    assert b"norbit" not in body and b"customers" not in body and b"127.0.0.1" in body
    posted = json.dumps({"customer": "Mallory", "text": "planted"}).encode()
    for path in ("/api/customer/message", "/slack/events"):
        status, head, _ = raw_request(
            port,
            f"POST http://evil.example{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(posted)}\r\n\r\n".encode()
            + posted,
        )
        assert status == 403, (path, head)
    assert httpx.get(server.url + "api/state", timeout=30).json()["customers"] == []  # nothing was done


def test_optional_whitespace_around_host_and_origin_is_not_part_of_them(server: SandboxServer) -> None:
    port = port_of(server)
    for host in (f"  127.0.0.1:{port}  ", f"\tlocalhost:{port}\t", f"127.0.0.1:{port} \t"):
        status, head, body = raw_request(port, f"GET /api/state HTTP/1.1\r\nHost:{host}\r\n\r\n".encode())
        assert status == 200, (host, head)
        assert json.loads(body)["mode"] == "emulator"
    posted = json.dumps({"enabled": True}).encode()
    status, head, body = raw_request(
        port,
        f"POST /api/chatbot HTTP/1.1\r\nHost:  127.0.0.1:{port} \r\nOrigin: \thttp://127.0.0.1:{port}  \r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(posted)}\r\n\r\n".encode()
        + posted,
    )
    assert status == 200 and json.loads(body) == {"chatbot": True}, head
    # Whitespace inside the value still makes it another name.
    for host in (f"127.0.0.1 :{port}", f"127.0.0.1: {port}", f"local host:{port}"):
        status, _, _ = raw_request(port, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status == 403, host


def test_names_allowed_beside_loopback_are_answered(tmp_path: Path, anyio_backend: str) -> None:
    # A reverse proxy keeps its own name (sandbox.example, no port); a port-mapped container or a forwarded port
    # is reached at another port (localhost:9000).
    with SandboxServer(
        data=str(tmp_path / "s.sqlite3"),
        backend=anyio_backend,  # type: ignore[arg-type]
        allowed_hosts=["Sandbox.Example", "localhost:9000"],
    ) as server:
        port = port_of(server)
        for host in ("sandbox.example", f"SANDBOX.example:{port}", "localhost:9000", f"127.0.0.1:{port}"):
            status, head, _ = raw_request(port, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert status == 200, (host, head)
        for host in ("sandbox.example:9000", "localhost:9001", "localhost", "evil.example", "sandbox.example."):
            status, _, _ = raw_request(port, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            assert status == 403, host
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for host, origin, expected in (
                ("sandbox.example", "https://sandbox.example", 200),
                ("sandbox.example", "http://sandbox.example", 200),
                ("localhost:9000", "http://localhost:9000", 200),
                ("sandbox.example", "https://evil.example", 403),
                ("sandbox.example", "https://sandbox.example:9000", 403),
                ("localhost:9000", "https://localhost", 403),
            ):
                posted = http.post("/api/chatbot", json={"enabled": True}, headers={"Host": host, "Origin": origin})
                assert posted.status_code == expected, (host, origin, posted.text)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "a b", "http://x.example", "x.example/", "x.example:0", "x.example:65536", "x.example:080",
     "x.example:", "x.example:port", "a@x.example", "x.example.", ".x.example", "*.example", "-x.example",
     "x_y.example", "x..example", "exämple.com", "\u212aiosk.example", "[::1", "[::1]x", "[fe80::1%eth0]",
     "[127.0.0.1]", "x.example:80:80", "x.example\n"],
)  # fmt: skip
def test_a_name_that_is_not_a_host_cannot_be_allowed(value: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_allowed_host(value)
    assert "NAME[:PORT]" in str(raised.value) and len(str(raised.value)) < 200
    with pytest.raises(ConfigurationError):
        SandboxServer(data=str(tmp_path / "never.sqlite3"), allowed_hosts=[value])
    assert not (tmp_path / "never.sqlite3").exists()


def test_allowed_names_by_example(tmp_path: Path) -> None:
    assert parse_allowed_host("Sandbox.Example") == "sandbox.example"
    assert parse_allowed_host("localhost:9000") == "localhost:9000"
    assert parse_allowed_host("::1") == "[::1]" and parse_allowed_host("[::1]:9000") == "[::1]:9000"
    assert parse_allowed_host("10.0.0.5:8000") == "10.0.0.5:8000"
    assert parse_allowed_hosts(" a.example, localhost:9000\tb.example,,") == (
        "a.example",
        "localhost:9000",
        "b.example",
    )
    assert parse_allowed_hosts("") == ()
    # The Kelvin sign's lower case is "k": no letter outside ASCII may stand for one in it.
    assert host_allowed("kiosk.example", 8000, names=["kiosk.example"])
    assert not host_allowed("\u212aiosk.example", 8000, names=["kiosk.example"])
    assert not origin_allowed("https://\u212aiosk.example", 8000, names=["kiosk.example"])
    with pytest.raises(ConfigurationError):
        parse_allowed_hosts("a.example, b c:1:2")
    with pytest.raises(ConfigurationError):
        SandboxServer(data=str(tmp_path / "never.sqlite3"), allowed_hosts="a.example")  # a name, not a list of names


PORTS = st.integers(min_value=1, max_value=65535)


def loopback(port: int) -> set[str]:
    """The Host values the sandbox answers at ``port`` and no others (any letter case)."""
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    return hosts | {"127.0.0.1", "localhost", "[::1]"} if port == 80 else hosts


def known_bad(port: int) -> list[str]:
    """Forms that name, or seem to name, the loopback address but are not an exact Host the sandbox serves."""
    other = port + 1 if port < 65535 else port - 1
    return [
        f"localhost.:{port}",
        f"127.0.0.1.:{port}",
        f"[::1].:{port}",
        f"[::ffff:127.0.0.1]:{port}",
        f"[0:0:0:0:0:0:0:1]:{port}",
        f"127.1:{port}",
        f"0x7f.0.0.1:{port}",
        f"0177.0.0.1:{port}",
        f"2130706433:{port}",
        f"127.0.0.2:{port}",
        f"0.0.0.0:{port}",
        f"a@127.0.0.1:{port}",
        f"localhost@evil.example:{port}",
        f"127.0.0.1:{port}@evil.example",
        f"127.0.0.1:{port}.evil.example",
        f"127.0.0.1:{port}/",
        f"127.0.0.1:{port}#",
        f"127.0.0.1:0{port}",
        f"127.0.0.1:+{port}",
        f"127.0.0.1:{port}:{port}",
        f"127.0.0.1:{other}",
        f"localhost:{other}",
        f"[::1]:{other}",
        f"127.0.0.1:{port + 65536}",
        f"127.0.0.1 :{port}",
        f"127.0.0.1: {port}",
        f"127.0.0.1:{port}\r\n x",
        f"local\thost:{port}",
        f"localhost:{port}\x00",
        f"\x0blocalhost:{port}",
        f"localhost:{port}\u00a0",
        f"\u217cocalhost:{port}",  # SMALL ROMAN NUMERAL FIFTY
        f"loca\u217chost:{port}",
        f"\uff4cocalhost:{port}",  # FULLWIDTH SMALL L
        f"\uff11\uff12\uff17.0.0.1:{port}",  # FULLWIDTH DIGITS
        "127.0.0.1:" + "".join(chr(0xFF10 + int(d)) for d in str(port)),
        "127.0.0.1:" + "".join(chr(0x0660 + int(d)) for d in str(port)),  # ARABIC-INDIC DIGITS
        f"localhost\u0307:{port}",
        f"[::1\u200b]:{port}",
        "::1",
        "",
        *([] if port == 80 else ["[::1]", "localhost", "127.0.0.1"]),  # without the port, it is port 80
    ]


@pytest.mark.parametrize("port", [80, 443, 8000, 9000, 65535])
def test_exactly_the_loopback_names_are_allowed(port: int) -> None:
    assert allowed_hosts(port) == frozenset(loopback(port))
    for host in loopback(port):
        for form in (host, host.upper(), host.title(), f" {host}\t", f"\t\t{host.upper()}  "):
            assert host_allowed(form, port), form
            assert origin_allowed(f"http://{form.strip()}", port), form
    for host in known_bad(port):
        assert not host_allowed(host, port), host
        assert not origin_allowed(f"http://{host}", port), host
        assert not host_allowed(host, port, names=("sandbox.example", "localhost:9000")), host
    assert not host_allowed(None, port)


def test_the_known_bad_forms_are_refused_by_the_server(server: SandboxServer) -> None:
    port = port_of(server)
    sendable = [h for h in known_bad(port) if "\r" not in h and "\n" not in h and h.isprintable() and h]
    for host in sendable:
        status, head, _ = raw_request(port, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status in (400, 403), (host, head)


def exact(value: str, expected: set[str]) -> bool:
    """Whether ``value``, without the spaces and tabs around it (RFC 9110, 5.5), is one of ``expected`` in
    some letter case (ASCII only)."""
    value = value.strip(" \t")
    return value.isascii() and value.lower() in expected


def some_case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False))


EDIT_CHARS = "0123456789.:@[]/#?%+- \t\r\n\x00\u00a0\u200bacfhilnostx\u0307\u217c\u212a\uff0e\uff11"


@st.composite
def near_hosts(draw: st.DrawFn) -> tuple[str, int]:
    """A port and a Host value made from one the sandbox answers there (or a look-alike) by a few edits."""
    port = draw(PORTS)
    host = draw(st.sampled_from(sorted(loopback(port)) + [f"{h}:{port}" for h in ("0.0.0.0", "127.1", "[::]")]))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        at = draw(st.integers(min_value=0, max_value=len(host)))
        char = draw(st.sampled_from(EDIT_CHARS))
        edit = draw(st.sampled_from(["insert", "replace", "delete", "port", "0port", "no port", "prefix", "suffix"]))
        if edit == "insert":
            host = host[:at] + char + host[at:]
        elif edit == "replace":
            host = host[:at] + char + host[at + 1 :]
        elif edit == "delete":
            host = host[:at] + host[at + 1 :]
        elif edit == "port":
            host = host.rpartition(":")[0] + ":" + draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True))
        elif edit == "0port":
            host = "{}:0{}".format(*host.rsplit(":", 1)) if ":" in host else host
        elif edit == "no port":
            host = host.rpartition(":")[0] if host.count(":") in (1, 3) else host
        else:
            word = draw(st.sampled_from(["a@", ".", ".evil.example", "evil.example", ":", "0", " ", "\t"]))
            host = word + host if edit == "prefix" else host + word
    return host, port


@given(host=st.text(max_size=60), port=PORTS)
def test_any_host_outside_the_exact_set_is_refused(host: str, port: int) -> None:
    assert host_allowed(host, port) == exact(host, loopback(port))
    for origin in (host, f"http://{host}", f"https://{host}"):
        assert origin_allowed(origin, port) == exact(origin, {f"http://{h}" for h in loopback(port)})


@settings(max_examples=1000)
@given(near=near_hosts())
def test_any_host_near_the_exact_set_but_outside_it_is_refused(near: tuple[str, int]) -> None:
    host, port = near
    assert host_allowed(host, port) == exact(host, loopback(port)), host
    for origin in (f"http://{host}", f"https://{host}"):
        assert origin_allowed(origin, port) == exact(origin, {f"http://{h}" for h in loopback(port)}), origin


@given(
    port=PORTS,
    index=st.integers(min_value=0),
    flips=st.lists(st.booleans(), max_size=30),
    pad=st.sampled_from(["", " ", "\t", " \t "]),
)
def test_every_loopback_host_in_any_case_is_allowed(port: int, index: int, flips: list[bool], pad: str) -> None:
    names = sorted(loopback(port))
    host = some_case(names[index % len(names)], flips)
    assert host_allowed(pad + host + pad, port)
    assert origin_allowed(pad + "http://" + host + pad, port)
    assert not origin_allowed("https://" + host, port) and not origin_allowed("http://" + host + "/", port)


@given(value=st.one_of(st.text(max_size=40), st.from_regex(r"[a-zA-Z0-9.\-\[\]:]{1,30}", fullmatch=True)), port=PORTS)
def test_an_allowed_name_admits_itself_and_nothing_new_of_loopback(value: str, port: int) -> None:
    try:
        name = parse_allowed_host(value)
    except ConfigurationError:
        return
    assert name.isascii() and name == name.lower() and not any(c.isspace() or c in "/@?#%" for c in name)
    assert parse_allowed_host(name) == name
    hosts = allowed_hosts(port, names=[name])
    assert hosts >= loopback(port) and name in hosts
    assert host_allowed(name.upper(), port, names=[name])
    assert not host_allowed(name + ".", port, names=[name]) and not host_allowed("a@" + name, port, names=[name])
    for added in hosts - loopback(port):
        assert added == name or added == f"{name}:{port}"


@given(target=st.text(max_size=60))
def test_only_a_path_is_a_target(target: str) -> None:
    parsed = origin_form(target)
    if not target.startswith("/") or target.startswith("//"):
        assert parsed is None
    else:
        assert parsed is not None
        path, query = parsed
        assert "#" not in query
        assert path.startswith("/") and not path.startswith("//") and "?" not in path and "#" not in path
        assert target.startswith(path)


def test_targets_by_example() -> None:
    assert origin_form("/api/state?customer=Zo%C3%AB") == ("/api/state", "customer=Zo%C3%AB")
    assert origin_form("/") == ("/", "") and origin_form("/a#b?c") == ("/a", "")
    for target in ("http://evil.example/", "//evil.example/", "*", "", "evil.example:80", "\\/evil", " /"):
        assert origin_form(target) is None, target
