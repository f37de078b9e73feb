"""The sandbox's web server: the standard library's threading HTTP server in front of an anyio event loop.

The hub runs in an event loop of its own thread (an anyio blocking portal, asyncio or trio); each HTTP request is
handled in a server thread that calls into that loop. No web framework is needed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Literal

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..exceptions import ConfigurationError, NorbitError, UsageError
from ..slack import SlackConfig
from ._app import SEED_DEPARTMENTS, SandboxApp, SandboxError
from ._hosts import host_allowed, origin_allowed, origin_form, parse_allowed_host, refusal_text

__all__ = ["SandboxServer", "slack_config_from_env"]

log = logging.getLogger("norbit_connectors.sandbox")

MAX_BODY = 1024 * 1024
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def slack_config_from_env(environ: Mapping[str, str]) -> SlackConfig | None:
    """A SlackConfig from SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_MAIN_CHANNEL (plus the optional
    SLACK_USER_TOKEN, SLACK_DEPARTMENT_CHANNELS, SLACK_BASE_URL), or None when the first two are not set."""
    from .._doctor import parse_department_channels

    token = environ.get("SLACK_BOT_TOKEN", "").strip()
    secret = environ.get("SLACK_SIGNING_SECRET", "").strip()
    if not token or not secret:
        return None
    main = environ.get("SLACK_MAIN_CHANNEL", "").strip()
    if not main:
        raise ConfigurationError("set SLACK_MAIN_CHANNEL to the id of the channel for new-conversation notices")
    return SlackConfig(
        bot_token=token,
        signing_secret=secret,
        main_channel=main,
        department_channels=parse_department_channels(environ.get("SLACK_DEPARTMENT_CHANNELS", "")),
        user_token=environ.get("SLACK_USER_TOKEN", "").strip() or None,
        base_url=environ.get("SLACK_BASE_URL", "").strip() or "https://slack.com/api/",
        user_details=("email", "location"),
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 overflows when many clients connect at once (a page's requests, a load
    # test), and the kernel then drops connections that a real service would have accepted.
    request_queue_size = 128
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.sandbox._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.sandbox._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


Reply = tuple[int, dict[str, str], bytes]


def _json(status: int, payload: Any) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return status, {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}, body


class SandboxServer:
    """The sandbox page and its JSON API on ``host:port`` (0: a free port), backed by :class:`SandboxApp`.

    ``with SandboxServer(data="x.sqlite3") as server: server.url`` -- or :meth:`start` / :meth:`close`.
    ``slack_config``: bridge to that Slack workspace instead of the emulator. ``allowed_hosts``: names
    (``NAME`` or ``NAME:PORT``) answered besides 127.0.0.1, localhost and [::1] at the port served, for a
    reverse proxy, a forwarded port or a port-mapped container; a bad one is a :class:`ConfigurationError`.
    """

    def __init__(
        self,
        *,
        data: str,
        port: int = 0,
        host: str = "127.0.0.1",
        slack_config: SlackConfig | None = None,
        backend: Literal["asyncio", "trio"] = "asyncio",
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise ConfigurationError("allowed_hosts is a list of names, not one name")
        self._allowed = tuple(parse_allowed_host(name) for name in allowed_hosts)
        self._data = data
        self._port = port
        self._host = host
        self._backend = backend
        self.app = SandboxApp(
            data=data, mode="slack" if slack_config is not None else "emulator", slack_config=slack_config
        )
        self._stack = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def url(self) -> str:
        if self._http is None:
            raise UsageError("the sandbox server is not started")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self, *, serve_in_thread: bool = True) -> SandboxServer:
        """Start the hub and bind the port; serve in a daemon thread unless ``serve_in_thread`` is False
        (then call :meth:`serve_forever`)."""
        try:
            self._portal = self._stack.enter_context(start_blocking_portal(self._backend))
            self._stack.enter_context(self._portal.wrap_async_context_manager(self.app))
            self._http = _HTTPServer((self._host, self._port), _Handler)
        except BaseException:
            self._stack.close()
            raise
        self._http.sandbox = self
        if serve_in_thread:
            self._serving = True  # before the thread runs, so that an early close() still stops it
            self._thread = threading.Thread(target=self.serve_forever, name="norbit-sandbox", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        assert self._http is not None
        self._serving = True
        self._http.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Stop serving, stop the hub (work in flight is kept in the store), close the file."""
        http, self._http = self._http, None
        if http is not None:
            if self._serving:
                # Waits for serve_forever to end; returns at once when it already has (Ctrl-C).
                http.shutdown()
            if self._thread is not None:
                self._thread.join(timeout=10)
            http.server_close()
        self._stack.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        # The target as sent: the standard library's handler turns a leading "//" into "/" in ``path``.
        words = handler.requestline.split()
        target = origin_form(words[1] if len(words) >= 2 else "")
        if target is None or not self._addressed_to_us(handler, method, target[0]):
            self._refuse(handler)
            return
        path, query = target
        try:
            length = int(handler.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            reply = _json(413 if length > MAX_BODY else 400, {"error": "bad Content-Length"})
            handler.close_connection = True
        else:
            body = handler.rfile.read(length) if length else b""
            try:
                reply = self._route(method, path, query, dict(handler.headers.items()), body)
            except (SandboxError, UsageError) as exc:
                reply = _json(400, {"error": str(exc)})
            except NorbitError as exc:
                reply = _json(502, {"error": f"{type(exc).__name__}: {exc}"})
            except Exception:
                log.exception("sandbox request %s %s failed", method, path)
                reply = _json(500, {"error": "the sandbox failed on this request; see its log"})
        status, headers, payload = reply
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("X-Content-Type-Options", "nosniff")
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(payload)

    def _addressed_to_us(self, handler: _Handler, method: str, path: str) -> bool:
        """Whether the request names this server's loopback address or an allowed name (DNS rebinding sends
        another name).

        Slack's Request URL is exempt: it arrives through a tunnel under the tunnel's name, and its signature,
        not its address, is what admits it."""
        if method == "POST" and path == "/slack/events" and self.app.slack is not None:
            return True
        assert self._http is not None
        port = int(self._http.server_address[1])
        bound = str(self._http.server_address[0])
        extra = None if bound in ("", "0.0.0.0", "::", "127.0.0.1", "::1") else bound
        hosts = handler.headers.get_all("Host") or []
        if len(hosts) != 1 or not host_allowed(hosts[0], port, bound=extra, names=self._allowed):
            return False
        origins = handler.headers.get_all("Origin") or []
        if method != "POST":
            return True
        origin = origins[0] if origins else None
        return len(origins) <= 1 and origin_allowed(origin, port, bound=extra, names=self._allowed)

    def _refuse(self, handler: _Handler) -> None:
        assert self._http is not None
        body = refusal_text(int(self._http.server_address[1]))
        # The body (if any) is left unread, so the connection is closed rather than reused.
        handler.close_connection = True
        handler.send_response(403)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("X-Content-Type-Options", "nosniff")
        handler.send_header("Cache-Control", "no-store")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._portal is not None
        return self._portal.call(fn, *args)

    def _route(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Reply:
        app = self.app
        if method == "GET":
            if path == "/":
                path = "/static/index.html"
            if path.startswith("/static/") and path[len("/static/") :] in _STATIC:
                name = path[len("/static/") :]
                content = resources.files(__package__).joinpath("static", name).read_bytes()
                return 200, {"Content-Type": _STATIC[name], "Cache-Control": "no-cache"}, content
            if path == "/api/state":
                customer = urllib.parse.parse_qs(query).get("customer", [""])[0]
                return _json(200, self._call(self._state, customer))
            return _json(404, {"error": "not found"})
        if path == "/slack/events":
            assert app.slack is not None
            response = self._call(app.slack.handle_http, headers, body)
            return int(response.status), dict(response.headers), bytes(response.body)
        if not path.startswith("/api/"):
            return _json(404, {"error": "not found"})
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            # Browsers cannot send this cross-site without a CORS preflight, which is never granted.
            return _json(415, {"error": "send application/json"})
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        if not isinstance(args, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        actions: dict[str, Callable[..., Any]] = {
            "/api/customer/message": lambda: app.customer_message(
                args.get("customer"), args.get("text"), args.get("department")
            ),
            "/api/customer/takeover": lambda: app.take_over(args.get("customer")),
            "/api/chatbot": lambda: app.set_chatbot(args.get("enabled")),
            "/api/agent/join": lambda: app.join(args.get("agent"), args.get("channel"), args.get("ts")),
            "/api/agent/message": lambda: app.agent_message(args.get("agent"), args.get("channel"), args.get("text")),
            "/api/idle": lambda: self._idle(),
        }
        action = actions.get(path)
        if action is None:
            return _json(404, {"error": "not found"})

        async def run() -> Any:
            result = await action()
            await app.save_slack_snapshot()
            return result

        return _json(200, self._call(run))

    async def _idle(self) -> dict[str, Any]:
        assert self.app.hub is not None
        await self.app.hub.wait_idle()
        return {"ok": True}

    async def _state(self, customer: str) -> dict[str, Any]:
        app = self.app
        return {
            "mode": app.mode,
            "settings": await app.settings(),
            "customers": await app.customers(),
            "customer": await app.customer_view(customer) if customer.strip() else None,
            "slack": app.slack_view(),
            "departments": [{"id": d.id, "name": d.name} for d in SEED_DEPARTMENTS],
        }
