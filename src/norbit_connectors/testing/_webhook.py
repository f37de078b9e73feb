"""What the platform emulators share: a loopback HTTP server in a thread, scripted faults, and webhook requests
ready to deliver to an app."""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol, Self

import anyio.to_thread
import attrs

from ..exceptions import ConfigurationError

__all__ = ["DeliveryResult", "Request", "Response", "Upload", "Webhook", "WebhookHandler"]


class _ResponseLike(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...


class WebhookHandler(Protocol):
    """An app's ``handle_http(headers, body, *, method=..., query=...)``."""

    def __call__(
        self, headers: Mapping[str, str], body: bytes, *, method: str = ..., query: str = ...
    ) -> Awaitable[_ResponseLike]: ...


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """The app's answer to a webhook delivered over HTTP."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen(kw_only=True)
class Webhook:
    """One request the platform would send to the app's webhook URL: exactly the bytes and headers on the wire."""

    body: bytes
    headers: Mapping[str, str]
    method: str = "POST"
    query: str = ""
    payload: Any = None  # the decoded body, for assertions

    async def deliver(self, handler: WebhookHandler) -> _ResponseLike:
        """Hand the request to an app's ``handle_http`` and return its answer."""
        return await handler(dict(self.headers), self.body, method=self.method, query=self.query)

    def post(self, url: str, *, timeout: float = 10.0) -> DeliveryResult:
        """Send the request to ``url`` (blocking) and return the app's answer, whatever its status."""
        full = f"{url}?{self.query}" if self.query else url
        data = self.body if self.method != "GET" else None
        request = urllib.request.Request(full, data=data, headers=dict(self.headers), method=self.method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                return DeliveryResult(
                    status=response.status, headers=dict(response.headers.items()), body=response.read()
                )
        except urllib.error.HTTPError as error:
            return DeliveryResult(status=error.code, headers=dict(error.headers.items()), body=error.read())

    async def apost(self, url: str) -> DeliveryResult:
        """:meth:`post` without blocking the event loop (asyncio or trio)."""
        return await anyio.to_thread.run_sync(lambda: self.post(url))


@attrs.frozen(kw_only=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content: bytes
    content_type: str


@attrs.frozen(kw_only=True)
class Request:
    """An API request as the emulator received it, its body decoded (JSON, form or multipart)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    fields: Mapping[str, Any]
    files: Mapping[str, Upload]
    malformed: str | None = None  # why the body could not be decoded

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@attrs.frozen(kw_only=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status=status, body=json.dumps(data).encode(), headers=dict(headers or {}))


@attrs.frozen(kw_only=True)
class Fault:
    status: int
    retry_after: int


def decode_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, Upload], str | None]:
    """(fields, files, error) of a request body."""
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return {}, {}, None
    if kind == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            return {}, {}, "the body is not valid JSON"
        if not isinstance(data, dict):
            return {}, {}, "the JSON body is not an object"
        return data, {}, None
    if kind == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return {}, {}, "the form body cannot be decoded"
        return dict(pairs), {}, None
    if kind == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            return {}, {}, "the multipart body cannot be decoded"
        fields: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                return {}, {}, "a multipart part has no name"
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                files[name] = Upload(
                    filename=filename,
                    content=payload,
                    content_type=part.get_content_type() or "application/octet-stream",
                )
            else:
                fields[name] = payload.decode("utf-8", "replace")
        return fields, files, None
    return {}, {}, f"unsupported Content-Type {kind!r}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 overflows when a hub's workers connect at once, and the kernel then drops
    # connections that a real service would have accepted.
    request_queue_size = 128
    allow_reuse_address = True
    emulator: LoopbackEmulator

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Named after the server's own thread, so that tests can tell the emulator's request threads apart.
        threading.current_thread().name = f"{self.emulator.thread_name} request"
        super().process_request_thread(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        headers = dict(self.headers.items())
        fields, files, error = decode_body(self.headers.get("Content-Type") or "", body)
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(parsed.path),
            query=query,
            headers=headers,
            fields=fields,
            files=files,
            malformed=error,
        )
        try:
            response = self.server.emulator._handle(request)
        except Exception as exc:  # an emulator bug answers 500 instead of dropping the connection
            response = Response.json(500, {"emulator_error": f"{type(exc).__name__}: {exc}"})
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines carry tokens


class LoopbackEmulator:
    """Base of the platform emulators: serves :meth:`_handle` on 127.0.0.1 from a daemon thread."""

    thread_name = "emulator"

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        import time

        self._clock = clock or time.time
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._faults: dict[str, list[Fault]] = {}

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread (idempotent)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.close)

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:<port>`` (the emulator must be started)."""
        if self._server is None:
            raise ConfigurationError("the emulator is not started: use `with` or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def now(self) -> float:
        return self._clock()

    def fail_next(self, operation: str, status: int = 429, *, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (a Bot API method name, or "messages" / "media" for the
        Graph API) fail with ``status`` (429: rate limited with ``retry_after``; 5xx: a server error)."""
        if status not in (429, 500, 502, 503):
            raise ConfigurationError("fault status must be 429, 500, 502 or 503")
        with self._lock:
            self._faults.setdefault(operation, []).extend(
                Fault(status=status, retry_after=retry_after) for _ in range(times)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, operation: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(operation)
            return queue.pop(0) if queue else None

    def _handle(self, request: Request) -> Response:
        raise NotImplementedError
