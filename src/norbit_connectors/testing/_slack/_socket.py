"""The emulator's Socket Mode side: a minimal RFC 6455 WebSocket server on 127.0.0.1.

``apps.connections.open`` issues a single-use URL; a client that connects to it gets ``hello`` and then the
envelopes the tests deliver. Acks (``{"envelope_id": ..., "payload": ...}``) are recorded and handed back to the
delivering test. Text frames, ping/pong and close are supported, which is all Slack's Socket Mode uses.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from ...exceptions import UsageError

__all__ = ["SocketAck", "SocketModeServer"]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_FRAME = 1 << 20  # larger frames are refused: Slack's own limit is far lower
_MAX_HEADER = 16 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@attrs.frozen(kw_only=True)
class SocketAck:
    """One acknowledgement a Socket Mode client sent: the envelope and the payload it answered with (if any)."""

    envelope_id: str
    payload: Mapping[str, Any] | None


class _Closed(Exception):
    pass


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode("ascii")).digest()).decode("ascii")


def encode_frame(opcode: int, data: bytes) -> bytes:
    """One unmasked, final frame (servers never mask)."""
    head = bytes([0x80 | opcode])
    length = len(data)
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + data


class _Connection:
    def __init__(self, server: SocketModeServer, sock: socket.socket, number: int) -> None:
        self.server = server
        self.sock = sock
        self.number = number
        self.send_lock = threading.Lock()
        self.open = False
        self.buffer = b""
        self.message_opcode: int | None = None
        self.fragments: list[bytes] = []

    def recv_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise _Closed
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def send_frame(self, opcode: int, data: bytes) -> None:
        frame = encode_frame(opcode, data)
        with self.send_lock:
            self.sock.sendall(frame)

    def send_json(self, message: Mapping[str, Any]) -> None:
        self.send_frame(OP_TEXT, json.dumps(message, separators=(",", ":")).encode("utf-8"))

    def handshake(self) -> bool:
        raw = b""
        while b"\r\n\r\n" not in raw:
            chunk = self.sock.recv(4096)
            if not chunk or len(raw) > _MAX_HEADER:
                return False
            raw += chunk
        head, self.buffer = raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "")
        path = parts[1] if len(parts) == 3 and parts[0] == "GET" else ""
        upgrade = headers.get("upgrade", "").lower() == "websocket"
        if not path or not upgrade or not key or headers.get("sec-websocket-version") != "13":
            self._refuse(400, "Bad Request")
            return False
        if not self.server._redeem(path):
            self._refuse(401, "Unauthorized")
            return False
        response = (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        )
        with self.send_lock:
            self.sock.sendall(response.encode("ascii"))
        return True

    def _refuse(self, status: int, reason: str) -> None:
        body = reason.encode("ascii")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        with self.send_lock:
            self.sock.sendall(head.encode("ascii") + body)

    def read_message(self) -> tuple[int, bytes]:
        """The next complete message (continuations joined); control frames come back as they arrive, also
        between the fragments of a message, so the fragments gathered so far live on the connection."""
        while True:
            b1, b2 = self.recv_exact(2)
            fin, opcode = b1 & 0x80, b1 & 0x0F
            if not b2 & 0x80:
                raise _Closed  # clients must mask (RFC 6455 section 5.1)
            length = b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self.recv_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self.recv_exact(8))
            if length > _MAX_FRAME:
                self.send_frame(OP_CLOSE, struct.pack("!H", 1009))
                raise _Closed
            mask = self.recv_exact(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.recv_exact(length)))
            if opcode >= 0x8:
                return opcode, data
            if opcode != OP_CONTINUATION:
                self.message_opcode, self.fragments = opcode, []
            elif self.message_opcode is None:
                raise _Closed  # a continuation of nothing: a protocol error
            self.fragments.append(data)
            if sum(len(f) for f in self.fragments) > _MAX_FRAME:
                self.send_frame(OP_CLOSE, struct.pack("!H", 1009))
                raise _Closed
            if fin:
                message = self.message_opcode, b"".join(self.fragments)
                self.message_opcode, self.fragments = None, []
                return message

    def serve(self) -> None:
        try:
            if not self.handshake():
                return
            self.open = True
            self.server._opened(self)
            while True:
                opcode, data = self.read_message()
                if opcode == OP_PING:
                    self.send_frame(OP_PONG, data)
                elif opcode == OP_CLOSE:
                    self.send_frame(OP_CLOSE, data[:2])
                    return
                elif opcode == OP_TEXT:
                    self.server._received(data)
        except (_Closed, OSError):
            return
        finally:
            self.open = False
            self.server._gone(self)
            with contextlib.suppress(OSError):
                self.sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class SocketModeServer:
    """Serves Socket Mode WebSocket connections on 127.0.0.1 from daemon threads."""

    def __init__(self, *, app_id: str, seed: int = 0) -> None:
        self._app_id = app_id
        self._random = random.Random(f"socket-mode:{seed}")
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._connections: list[_Connection] = []
        self._threads: list[threading.Thread] = []
        self._acks: list[SocketAck] = []
        self._pending: dict[str, SocketAck | None] = {}
        self._envelopes = 0
        self._opened_count = 0
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._port = int(self._listener.getsockname()[1])
        self._accepting = threading.Thread(target=self._accept, name="slack-emulator-socket-mode", daemon=True)
        self._accepting.start()

    # ---------------------------------------------------------------- URLs and lifecycle

    def issue_url(self) -> str:
        """A fresh single-use URL, as ``apps.connections.open`` returns it."""
        with self._cond:
            if self._closed:
                raise UsageError("the Socket Mode server is closed")
            ticket = "".join(self._random.choice("0123456789abcdef") for _ in range(32))
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={self._app_id}"

    def _redeem(self, path: str) -> bool:
        _, _, query = path.partition("?")
        fields = dict(part.partition("=")[::2] for part in query.split("&") if part)
        with self._cond:
            ticket = fields.get("ticket", "")
            if ticket not in self._tickets:
                return False
            self._tickets.discard(ticket)
            return True

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._cond:
                if self._closed:
                    sock.close()
                    return
                self._opened_count += 1
                connection = _Connection(self, sock, self._opened_count)
                thread = threading.Thread(
                    target=connection.serve, name=f"slack-emulator-socket-{connection.number}", daemon=True
                )
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
                self._connections.append(connection)
            thread.start()

    def close(self) -> None:
        """Close every connection and stop listening (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections)
            threads = list(self._threads)
            self._cond.notify_all()
        for connection in connections:
            connection.close()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in threads:
            thread.join(timeout=5)

    # ---------------------------------------------------------------- connection events

    def _opened(self, connection: _Connection) -> None:
        with self._cond:
            live = sum(1 for c in self._connections if c.open)
        connection.send_json(
            {
                "type": "hello",
                "num_connections": live,
                "debug_info": {"host": "applink-emulator", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self._app_id},
            }
        )
        with self._cond:
            self._cond.notify_all()

    def _gone(self, connection: _Connection) -> None:
        with self._cond:
            if connection in self._connections:
                self._connections.remove(connection)
            self._cond.notify_all()

    def _received(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return  # Slack ignores what it cannot parse; the envelope is retried later
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            return
        payload = message.get("payload")
        ack = SocketAck(envelope_id=message["envelope_id"], payload=payload if isinstance(payload, dict) else None)
        with self._cond:
            self._acks.append(ack)
            if ack.envelope_id in self._pending:
                self._pending[ack.envelope_id] = ack
            self._cond.notify_all()

    # ---------------------------------------------------------------- inspection

    @property
    def connection_count(self) -> int:
        """Open connections now."""
        with self._cond:
            return sum(1 for c in self._connections if c.open)

    @property
    def connections_opened(self) -> int:
        """Connections accepted since the start, including closed ones."""
        with self._cond:
            return self._opened_count

    @property
    def acks(self) -> list[SocketAck]:
        with self._cond:
            return list(self._acks)

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not any(c.open for c in self._connections):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    # ---------------------------------------------------------------- acting as Slack

    def _newest(self, deadline: float) -> _Connection:
        with self._cond:
            while True:
                live = [c for c in self._connections if c.open]
                if live:
                    return live[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise TimeoutError("no Socket Mode client is connected")
                self._cond.wait(remaining)

    def deliver(
        self,
        envelope_type: str,
        payload: Mapping[str, Any],
        *,
        accepts_response_payload: bool,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = 10.0,
    ) -> SocketAck:
        """Send one envelope to the newest connection and wait for its ack (``TimeoutError`` if none comes)."""
        deadline = time.monotonic() + timeout
        connection = self._newest(deadline)
        with self._cond:
            self._envelopes += 1
            envelope_id = f"{self._envelopes:08x}-{self._random.getrandbits(64):016x}"
            self._pending[envelope_id] = None
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": dict(payload),
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        try:
            try:
                connection.send_json(envelope)
            except OSError:
                raise TimeoutError("the Socket Mode connection closed before the envelope was sent") from None
            with self._cond:
                while self._pending[envelope_id] is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        raise TimeoutError(f"no ack for envelope {envelope_id} ({envelope_type})")
                    self._cond.wait(remaining)
                ack = self._pending[envelope_id]
                assert ack is not None
                return ack
        finally:
            with self._cond:
                self._pending.pop(envelope_id, None)

    def disconnect(self, reason: str = "refresh_requested", *, timeout: float = 10.0) -> None:
        """Ask the newest connection to reconnect (``{"type": "disconnect"}``), as Slack does every few hours."""
        deadline = time.monotonic() + timeout
        connection = self._newest(deadline)
        connection.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-emulator"}})
        # The client opens a new connection; then Slack drops the old one. Wait for both, so that the next
        # delivery cannot go to a connection on its way out.
        with self._cond:
            while not any(c.open and c is not connection for c in self._connections):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise TimeoutError("the Socket Mode client did not reconnect")
                self._cond.wait(remaining)
        connection.close()
        with self._cond:
            while connection in self._connections:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise TimeoutError("the old Socket Mode connection did not close")
                self._cond.wait(remaining)
