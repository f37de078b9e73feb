"""A strict local Slack Web API emulator that the unmodified ``slack_sdk`` clients talk to over real HTTP.

It serves from a daemon thread (stdlib ``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port), so sync code,
asyncio and trio hosts can all use it. See docs/testing.md.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import anyio.to_thread
import attrs

from ..exceptions import ConfigurationError, UsageError
from ..slack._signature import sign_headers
from ._slack._api import DEFAULT_BOT_SCOPES, DEFAULT_USER_SCOPES, METHODS, Workspace
from ._slack._events import DeliveryResult, HttpResponseLike, SlackRequest, json_body
from ._slack._model import ApiError, ChannelRecord, FileRecord, Identity, MessageRecord
from ._slack._ratelimit import RATE_PROFILES, RateLimiter
from ._slack._socket import SocketAck, SocketModeServer

__all__ = [
    "DEFAULT_BOT_SCOPES",
    "DEFAULT_USER_SCOPES",
    "DeliveryResult",
    "FaultKind",
    "HttpResponseLike",
    "SlackCall",
    "SlackEmulator",
    "SlackRequest",
    "SocketAck",
]

FaultKind = Literal[429, 500, 503, "reset", "latency"]
_FAULT_KINDS: tuple[FaultKind, ...] = (429, 500, 503, "reset", "latency")


@attrs.frozen(kw_only=True)
class SlackCall:
    """One Web API call the emulator received (``args`` without the token)."""

    method: str
    args: Mapping[str, Any]
    token_kind: str | None  # "bot", "user" or None (no or unknown token)
    status: int  # HTTP status; 0 when the connection was reset
    ok: bool
    error: str | None
    response: Mapping[str, Any] | None
    http_method: str
    fault: str | None = None


@attrs.frozen(kw_only=True)
class _Fault:
    kind: FaultKind
    retry_after: int | str
    delay: float
    after: bool  # apply the call, then fail the response (the caller cannot know it succeeded)


@attrs.define(kw_only=True)
class _RandomFaults:
    probability: float
    kinds: tuple[FaultKind, ...]
    methods: frozenset[str] | None
    rng: random.Random
    retry_after: int
    delay: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default listen backlog of 5 overflows when a hub's workers connect at once, and the kernel then drops
    # connections that a real service would have accepted.
    request_queue_size = 128
    allow_reuse_address = True
    emulator: SlackEmulator

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Named like the server's own thread, so that code under test looking for threads it left behind can
        # tell the emulator's request threads (which may still be closing a connection) from its own.
        threading.current_thread().name = "slack-emulator request"
        super().process_request_thread(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.emulator._serve(self)

    def do_POST(self) -> None:
        self.server.emulator._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests carry tokens; keep them out of stderr.
        return


def _check_kind(kind: object) -> FaultKind:
    if kind not in _FAULT_KINDS:
        raise ConfigurationError(f"fault kind must be one of {_FAULT_KINDS}, not {kind!r}")
    return kind


class SlackEmulator:
    """A Slack workspace with the app installed, served over HTTP at :attr:`base_url`.

    ``rate_limits``: ``"off"``; ``"slack"`` (Tier 1-4: 1/20/50/100 per minute per token and method,
    chat.postMessage 1 per second per channel with a burst of 5); ``"tight"`` (Tier 1-4 bursts of 1/2/5/10
    refilling at 2/10/25/50 per second, chat.postMessage a burst of 2 per channel refilling at 10 per second).
    ``bot_scopes``: ``None`` grants every scope the connector needs (:data:`DEFAULT_BOT_SCOPES`).
    ``clock``: seconds since the epoch, for timestamps and rate limits (default :func:`time.time`).
    """

    def __init__(
        self,
        *,
        rate_limits: Literal["off", "slack", "tight"] = "off",
        bot_scopes: Iterable[str] | None = None,
        user_scopes: Iterable[str] | None = None,
        clock: Callable[[], float] | None = None,
        seed: int = 0,
        team_id: str = "T0EMULATOR",
        team_domain: str = "norbit-emulator",
        bot_name: str = "norbit",
        signing_secret: str | None = None,
    ) -> None:
        if rate_limits not in RATE_PROFILES:
            raise ConfigurationError(f"rate_limits must be 'off', 'slack' or 'tight', not {rate_limits!r}")
        if isinstance(bot_scopes, str) or isinstance(user_scopes, str):
            raise ConfigurationError("bot_scopes / user_scopes are sets of scope names, not one string")
        self._clock = clock or time.time
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._random = random.Random(seed)
        self._ws = Workspace(
            clock=self._clock,
            seed=seed,
            team_id=team_id,
            team_domain=team_domain,
            bot_name=bot_name,
            bot_scopes=DEFAULT_BOT_SCOPES if bot_scopes is None else frozenset(bot_scopes),
            user_scopes=DEFAULT_USER_SCOPES if user_scopes is None else frozenset(user_scopes),
            base_url=lambda: self.base_url,
        )
        self._limiter = RateLimiter(RATE_PROFILES[rate_limits])
        self.rate_limits = rate_limits
        self._signing_secret = signing_secret or self._ws.random_hex(32)
        self._verification_token = self._ws.random_hex(24)
        self._calls: list[SlackCall] = []
        self._redirects: dict[str, str] = {}
        self._scripted: dict[str, list[_Fault]] = {}
        self._random_faults: _RandomFaults | None = None
        self._event_count = 0
        # Socket Mode: an app-level token (its own generator, so the workspace's ids stay as they were) and a
        # WebSocket server started by the first apps.connections.open.
        app_random = random.Random(f"app-token:{seed}")
        self._app_token = "xapp-1-{}-{}-{}".format(
            self._ws.app_id,
            "".join(app_random.choice("0123456789") for _ in range(13)),
            "".join(app_random.choice("0123456789abcdef") for _ in range(64)),
        )
        self._seed = seed
        self._socket: SocketModeServer | None = None

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "not started"
        return f"<SlackEmulator {self._ws.team_id} {state}>"

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SlackEmulator:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread (idempotent)."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="slack-emulator", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        with self._lock:
            socket_server, self._socket = self._socket, None
        if socket_server is not None:
            socket_server.close()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SlackEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> SlackEmulator:
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await anyio.to_thread.run_sync(self.close)

    # ---------------------------------------------------------------- identity

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/``: pass it as ``WebClient(base_url=...)``."""
        if self._server is None:
            raise UsageError("the SlackEmulator is not started: use `with SlackEmulator() as slack:` or .start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    @property
    def bot_token(self) -> str:
        return self._ws.bot_token

    @property
    def user_token(self) -> str:
        """The installing user's token (``xoxp-``): it can unarchive channels."""
        return self._ws.user_token

    @property
    def app_token(self) -> str:
        """The app-level token (``xapp-``, scope ``connections:write``) for Socket Mode."""
        return self._app_token

    @property
    def signing_secret(self) -> str:
        return self._signing_secret

    @property
    def verification_token(self) -> str:
        """The deprecated ``token`` field Slack still puts in payloads."""
        return self._verification_token

    @property
    def team_id(self) -> str:
        return self._ws.team_id

    @property
    def team_domain(self) -> str:
        return self._ws.team_domain

    @property
    def app_id(self) -> str:
        return self._ws.app_id

    @property
    def bot_id(self) -> str:
        return self._ws.bot_id

    @property
    def bot_user_id(self) -> str:
        return self._ws.bot_user_id

    @property
    def installer_user_id(self) -> str:
        return self._ws.installer_user_id

    @property
    def general_channel_id(self) -> str:
        return self._ws.general_id

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """``X-Slack-Signature`` and ``X-Slack-Request-Timestamp`` for ``body`` (now, or at ``timestamp``)."""
        return sign_headers(self._signing_secret, body, timestamp=timestamp)

    def issue_token(self, user_id: str, scopes: Iterable[str]) -> str:
        """A user token (``xoxp-``) for another workspace member, with the given scopes."""
        with self._lock:
            self._ws.require_user(user_id)
            token = self._ws.random_token("xoxp")
            self._ws.identities[token] = Identity(token=token, kind="user", user_id=user_id, scopes=frozenset(scopes))
            return token

    def revoke_token(self, token: str) -> None:
        """Later calls with ``token`` fail with ``token_revoked``."""
        with self._lock:
            identity = self._ws.identities.get(token)
            if identity is None:
                raise UsageError("unknown token")
            identity.revoked = True

    # ---------------------------------------------------------------- seeding

    def add_user(
        self,
        name: str,
        email: str | None = None,
        real_name: str | None = None,
        is_bot: bool = False,
        *,
        is_admin: bool = False,
        presence: Literal["active", "away"] = "active",
        tz: str = "Europe/London",
        user_id: str | None = None,
    ) -> str:
        """Add a workspace member; returns its user id."""
        with self._lock:
            return self._ws.add_user(
                name,
                email=email,
                real_name=real_name,
                is_bot=is_bot,
                is_admin=is_admin,
                presence=presence,
                tz=tz,
                user_id=user_id,
            )

    def set_presence(self, user_id: str, presence: Literal["active", "away"]) -> None:
        with self._lock:
            if presence not in ("active", "away"):
                raise UsageError("presence is 'active' or 'away'")
            self._ws.require_user(user_id).presence = presence

    def add_channel(
        self,
        name: str,
        is_private: bool = False,
        members: Sequence[str] = (),
        *,
        creator: str | None = None,
    ) -> str:
        """Add a channel (name rules as Slack's); returns its id. The bot is a member only if listed."""
        with self._lock:
            return self._ws.add_channel(name, is_private=is_private, members=tuple(members), creator=creator)

    def join(self, channel: str, user_id: str) -> None:
        """Make ``user_id`` a member of ``channel`` (id or name), without any API call."""
        with self._lock:
            record = self._ws.require_channel(channel)
            self._ws.require_user(user_id)
            if user_id not in record.members:
                record.members.append(user_id)

    def leave(self, channel: str, user_id: str) -> None:
        with self._lock:
            record = self._ws.require_channel(channel)
            if user_id in record.members:
                record.members.remove(user_id)

    # ---------------------------------------------------------------- inspection

    @property
    def channels(self) -> dict[str, dict[str, Any]]:
        """Channel id -> a snapshot: id, name, is_private, is_archived, is_general, members, topic, purpose."""
        with self._lock:
            return {cid: self._channel_snapshot(record) for cid, record in self._ws.channels.items()}

    @staticmethod
    def _channel_snapshot(record: ChannelRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": record.name,
            "is_private": record.is_private,
            "is_archived": record.is_archived,
            "is_general": record.is_general,
            "members": list(record.members),
            "topic": record.topic["value"],
            "purpose": record.purpose["value"],
            "creator": record.creator,
            "previous_names": list(record.previous_names),
        }

    def find_channel(self, name: str) -> dict[str, Any] | None:
        """The snapshot of the channel named ``name`` (archived ones included), or ``None``."""
        with self._lock:
            record = self._ws.find_channel(name.lstrip("#"))
            return None if record is None else self._channel_snapshot(record)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message in ``channel`` (id or name), oldest first, thread replies included.

        Each has text, user, bot_id, username, icons, blocks, attachments, metadata, thread_ts, files, ts,
        edited, subtype, and ``author``: the name Slack shows (the username override if it was honoured).
        """
        with self._lock:
            record = self._ws.require_channel(channel)
            return [self._message_snapshot(m) for m in self._ws.messages[record.id]]

    def _message_snapshot(self, message: MessageRecord) -> dict[str, Any]:
        return {
            "ts": message.ts,
            "channel": message.channel,
            "text": message.text,
            "user": message.user,
            "bot_id": message.bot_id,
            "subtype": message.subtype,
            "username": message.username,
            "icons": dict(message.icons) if message.icons else None,
            "blocks": message.blocks,
            "attachments": message.attachments,
            "metadata": message.metadata,
            "thread_ts": message.thread_ts if message.thread_ts != message.ts else None,
            "reply_broadcast": message.reply_broadcast,
            "files": [self._ws.render_file(self._ws.files[fid]) for fid in message.files],
            "edited": dict(message.edited) if message.edited else None,
            "reactions": {name: list(users) for name, users in message.reactions.items()},
            "author": message.author,
        }

    def take_events(self) -> list[SlackRequest]:
        """The events Slack would have sent the app because of its own Web API calls since the last take:
        ``message`` for its posts (with ``bot_id``), ``message_changed`` / ``message_deleted`` for its edits,
        ``channel_archive`` / ``group_archive`` / ``channel_unarchive`` / ``group_unarchive``. Each is signed
        and ready to deliver; taking them clears the list.
        """
        with self._lock:
            pending, self._ws.emitted = self._ws.emitted, []
        return [self.event_request(event) for event in pending]

    def ephemeral_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self._ws.ephemerals]

    def file_content(self, file_id: str) -> bytes | None:
        with self._lock:
            record = self._ws.files.get(file_id)
            return None if record is None else record.content

    @property
    def calls(self) -> list[SlackCall]:
        """Every Web API call received, in order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # ---------------------------------------------------------------- faults

    def fail_next(
        self,
        method: str,
        status: FaultKind = 500,
        *,
        times: int = 1,
        retry_after: int | str = 1,
        delay: float = 0.5,
        after: bool = False,
    ) -> None:
        """Fail the next ``times`` calls of ``method`` (``"*"``: any method).

        ``status``: 429 (ratelimited with ``Retry-After: retry_after``), 500, 503, ``"reset"`` (the connection is
        closed without an answer) or ``"latency"`` (answer normally after ``delay`` seconds). With ``after=True``
        the call takes effect before the failure, as when a response is lost on the way back. A string
        ``retry_after`` is sent as the header's text, as it is (``"nan"``, ``"1e12"``): for clients' parsers.
        """
        kind = _check_kind(status)
        if method != "*" and method not in METHODS:
            raise ConfigurationError(f"the emulator does not serve {method!r}")
        if isinstance(retry_after, str):
            if not retry_after.isprintable() or not retry_after.isascii():
                raise ConfigurationError("a Retry-After text must be printable ASCII")
        elif retry_after < 1:
            raise ConfigurationError("times and retry_after must be >= 1, delay >= 0")
        if times < 1 or delay < 0:
            raise ConfigurationError("times and retry_after must be >= 1, delay >= 0")
        with self._lock:
            fault = _Fault(kind=kind, retry_after=retry_after, delay=delay, after=after)
            self._scripted.setdefault(method, []).extend([fault] * times)

    def faults(
        self,
        probability: float,
        kinds: Iterable[FaultKind] = (429, 500, 503, "reset"),
        *,
        seed: int = 0,
        methods: Iterable[str] | None = None,
        retry_after: int = 1,
        delay: float = 0.2,
    ) -> None:
        """Fail each call (of ``methods``, default all) with ``probability``, drawing the kind from ``kinds``.

        Seeded, so a run is reproducible for a given call order. ``probability=0`` turns random faults off.
        """
        if not 0.0 <= probability <= 1.0:
            raise ConfigurationError("probability must be between 0 and 1")
        checked = tuple(_check_kind(kind) for kind in kinds)
        if not checked:
            raise ConfigurationError("kinds must not be empty")
        selected = None if methods is None else frozenset(methods)
        if selected is not None and not selected <= set(METHODS):
            raise ConfigurationError(f"unknown methods: {sorted(selected - set(METHODS))}")
        with self._lock:
            self._random_faults = (
                None
                if probability == 0
                else _RandomFaults(
                    probability=probability,
                    kinds=checked,
                    methods=selected,
                    rng=random.Random(seed),
                    retry_after=retry_after,
                    delay=delay,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._scripted.clear()
            self._random_faults = None

    def _next_fault(self, method: str) -> _Fault | None:
        for key in (method, "*"):
            queue = self._scripted.get(key)
            if queue:
                return queue.pop(0)
        plan = self._random_faults
        selected = plan is not None and (plan.methods is None or method in plan.methods)
        if plan is not None and selected and plan.rng.random() < plan.probability:
            return _Fault(kind=plan.rng.choice(plan.kinds), retry_after=plan.retry_after, delay=plan.delay, after=False)
        return None

    # ---------------------------------------------------------------- HTTP

    def _serve(self, handler: _Handler) -> None:
        try:
            self._route(handler)
        except Exception as exc:  # a bug in the emulator: answer so the test sees it instead of hanging
            payload = {"ok": False, "error": "fatal_error", "detail": f"emulator error: {exc!r}"}
            self._send_json(handler, 500, payload)

    def _route(self, handler: _Handler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        raw_length = handler.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            self._send(handler, 400, b"bad Content-Length", "text/plain")
            handler.close_connection = True
            return
        length = int(raw_length)
        body = handler.rfile.read(length) if length > 0 else b""
        path = parsed.path
        if path.startswith("/api/"):
            self._serve_api(handler, path[len("/api/") :], parsed.query, body)
        elif path.startswith("/upload/v1/") and handler.command == "POST":
            self._serve_upload(handler, path[len("/upload/v1/") :], body)
        elif path.startswith("/files-pri/") and handler.command == "GET":
            self._serve_download(handler, path[len("/files-pri/") :])
        elif path.startswith("/redirect/") and path[len("/redirect/") :] in self._redirects:
            location = self._redirects[path[len("/redirect/") :]]
            self._send(handler, 302, b"", "text/plain", {"Location": location})
        else:
            self._send(handler, 404, b"not found", "text/plain")

    @staticmethod
    def _send(
        handler: _Handler, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _send_json(
        self, handler: _Handler, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(handler, status, json.dumps(payload).encode("utf-8"), "application/json; charset=utf-8", headers)

    @staticmethod
    def _parse_args(handler: _Handler, query: str, body: bytes) -> tuple[dict[str, Any], str | None]:
        """Merge query string, form and JSON arguments; returns (args, error)."""
        args: dict[str, Any] = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if not body:
            return args, None
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError:
                return args, "invalid_json"
            if not isinstance(decoded, dict):
                return args, "invalid_json"
            # Slack ignores a token inside a JSON body: JSON calls authenticate with the header only.
            decoded.pop("token", None)
            args.update(decoded)
        elif content_type == "application/x-www-form-urlencoded":
            try:
                args.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
            except (UnicodeDecodeError, ValueError):
                return args, "invalid_form_data"
        elif content_type == "":
            return args, "missing_post_type"
        else:
            return args, "invalid_post_type"
        return args, None

    def _serve_api(self, handler: _Handler, method: str, query: str, body: bytes) -> None:
        args, parse_error = self._parse_args(handler, query, body)
        auth = handler.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
        arg_token = args.pop("token", None)
        if not token and isinstance(arg_token, str):
            token = arg_token
        spec = METHODS.get(method)
        with self._lock:
            identity = self._ws.identities.get(token or "")
            kind = identity.kind if identity is not None else None
            fault = self._next_fault(method) if spec is not None else None
        if fault is not None and fault.kind == "latency":
            time.sleep(fault.delay)
            fault = None
        if spec is None:
            payload: dict[str, Any] = {"ok": False, "error": "unknown_method", "req_method": method}
            self._record(method, args, kind, 404, payload, handler.command)
            self._send_json(handler, 404, payload)
            return
        if fault is not None and not fault.after:
            self._fail(handler, method, args, kind, fault)
            return
        status, payload, headers = self._dispatch(spec.name, spec.tier, token, args, parse_error)
        if fault is not None:
            self._fail(handler, method, args, kind, fault)
            return
        self._record(method, args, kind, status, payload, handler.command)
        if identity is not None:
            # Slack reports the token's granted scopes on every authenticated answer.
            headers = {**(headers or {}), "X-OAuth-Scopes": ",".join(sorted(identity.scopes))}
        self._send_json(handler, status, payload, headers)

    def _dispatch(
        self, method: str, tier: int | None, token: str | None, args: dict[str, Any], parse_error: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        spec = METHODS[method]
        with self._lock:
            try:
                if parse_error is not None:
                    raise ApiError(parse_error)
                if method == "apps.connections.open" or (token and token == self._app_token):
                    return 200, self._connections_open(method, token), {}
                identity = self._ws.identity(token)
                channel = args.get("channel") if method == "chat.postMessage" else None
                if isinstance(channel, str) and channel not in self._ws.channels:
                    # Posting by name shares the channel's bucket.
                    named = self._ws.find_channel(channel.lstrip("#"))
                    channel = named.id if named is not None else channel
                retry_after = self._limiter.check(
                    token=identity.token,
                    method=method,
                    tier=tier if tier is not None else 0,
                    channel=channel if isinstance(channel, str) else None,
                    now=self._clock(),
                )
                if retry_after is not None:
                    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
                result = self._ws.call(spec, identity, args)
                payload: dict[str, Any] = {"ok": True, **result}
            except ApiError as error:
                payload = {"ok": False, "error": error.code, **error.extra}
            return 200, payload, {}

    def _fail(self, handler: _Handler, method: str, args: dict[str, Any], kind: str | None, fault: _Fault) -> None:
        if fault.kind == "reset":
            self._record(method, args, kind, 0, None, handler.command, fault="reset")
            handler.close_connection = True
            return
        if fault.kind == 429:
            payload: dict[str, Any] = {"ok": False, "error": "ratelimited"}
            self._record(method, args, kind, 429, payload, handler.command, fault="429")
            self._send_json(handler, 429, payload, {"Retry-After": str(fault.retry_after)})
            return
        code = "internal_error" if fault.kind == 500 else "service_unavailable"
        payload = {"ok": False, "error": code}
        self._record(method, args, kind, int(fault.kind), payload, handler.command, fault=str(fault.kind))
        self._send_json(handler, int(fault.kind), payload)

    def _record(
        self,
        method: str,
        args: Mapping[str, Any],
        kind: str | None,
        status: int,
        payload: Mapping[str, Any] | None,
        http_method: str,
        *,
        fault: str | None = None,
    ) -> None:
        ok = bool(payload and payload.get("ok"))
        error = None if payload is None or ok else str(payload.get("error"))
        if payload is None:
            error = "connection_reset"
        with self._lock:
            self._calls.append(
                SlackCall(
                    method=method,
                    args=dict(args),
                    token_kind=kind,
                    status=status,
                    ok=ok,
                    error=error,
                    response=payload,
                    http_method=http_method,
                    fault=fault,
                )
            )

    def _serve_upload(self, handler: _Handler, key: str, body: bytes) -> None:
        with self._lock:
            file_id = self._ws.uploads.get(key)
            record = self._ws.files.get(file_id) if file_id else None
            if record is None or record.completed:
                status, text = 404, b"upload URL unknown or already used"
            else:
                record.content = body
                status, text = 200, b"OK - " + str(len(body)).encode("ascii")
        self._send(handler, status, text, "text/plain; charset=utf-8")

    def _serve_download(self, handler: _Handler, rest: str) -> None:
        auth = handler.headers.get("Authorization") or ""
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        file_part = rest.split("/", 1)[0]
        file_id = file_part.rsplit("-", 1)[-1]
        with self._lock:
            identity = self._ws.identities.get(token)
            record: FileRecord | None = self._ws.files.get(file_id)
            if identity is None or identity.revoked or "files:read" not in identity.scopes:
                status, body, ctype = 403, b"a valid token with files:read is required", "text/plain"
            elif record is None or record.content is None or not self._file_visible(identity, record):
                status, body, ctype = 404, b"file not found", "text/plain"
            else:
                status, body, ctype = 200, record.content, record.mimetype
        self._send(handler, status, body, ctype)

    def redirect_url(self, location: str) -> str:
        """A URL on the emulator's origin that answers ``302 Found`` to ``location`` (for clients that must not
        follow redirects with their token)."""
        with self._lock:
            key = self._ws.random_hex(16)
            self._redirects[key] = location
        return f"{self.base_url[: -len('api/')]}redirect/{key}"

    def _file_visible(self, identity: Identity, record: FileRecord) -> bool:
        if record.user == identity.user_id:
            return True
        for channel_id in record.channels:
            channel = self._ws.channels[channel_id]
            if not channel.is_private or identity.user_id in channel.members:
                return True
        return False

    # ---------------------------------------------------------------- acting as Slack towards the app

    def _event_id(self) -> str:
        self._event_count += 1
        return f"Ev{self._event_count:08X}{self._ws.random_hex(4).upper()}"

    def event_request(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        event_time: int | None = None,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
    ) -> SlackRequest:
        """An Events API ``event_callback`` carrying ``event``, signed (reuse ``event_id`` to model a retry)."""
        with self._lock:
            event_id = event_id or self._event_id()
            envelope: dict[str, Any] = {
                "token": self._verification_token,
                "team_id": self.team_id,
                "api_app_id": self.app_id,
                "event": dict(event),
                "type": "event_callback",
                "event_id": event_id,
                "event_time": event_time if event_time is not None else self._ws.now(),
                "authorizations": [
                    {
                        "enterprise_id": None,
                        "team_id": self.team_id,
                        "user_id": self.bot_user_id,
                        "is_bot": True,
                        "is_enterprise_install": False,
                    }
                ],
                "is_ext_shared_channel": False,
                "event_context": "4-" + self._ws.random_hex(40),
            }
        return SlackRequest.build(
            kind="event",
            payload=envelope,
            body=json_body(envelope),
            content_type="application/json",
            signing_secret=self._signing_secret,
            timestamp=timestamp,
            retry_num=retry_num,
            retry_reason=retry_reason,
            event_id=event_id,
        )

    def url_verification(self, challenge: str | None = None, *, timestamp: int | None = None) -> SlackRequest:
        with self._lock:
            payload = {
                "token": self._verification_token,
                "challenge": challenge or self._ws.random_hex(32),
                "type": "url_verification",
            }
        return SlackRequest.build(
            kind="url_verification",
            payload=payload,
            body=json_body(payload),
            content_type="application/json",
            signing_secret=self._signing_secret,
            timestamp=timestamp,
        )

    def _user_member(self, user_id: str, channel: str) -> ChannelRecord:
        record = self._ws.require_channel(channel)
        self._ws.require_user(user_id)
        if user_id not in record.members:
            raise UsageError(f"{user_id} is not a member of #{record.name}: join() them first")
        if record.is_archived:
            raise UsageError(f"#{record.name} is archived")
        return record

    def post_as_user(
        self,
        user_id: str,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        files: Sequence[tuple[str, bytes, str]] = (),
    ) -> SlackRequest:
        """A member writes in ``channel`` (optionally in a thread, optionally sharing ``(name, bytes, mimetype)``
        files): the message is recorded and the ``message`` event Slack would send is returned.
        """
        with self._lock:
            record = self._user_member(user_id, channel)
            try:
                root = self._ws.thread_root(record, thread_ts)
            except ApiError:
                raise UsageError(f"no message {thread_ts} in #{record.name} to reply to") from None
            file_ids = [self._user_file(user_id, name, content, mimetype) for name, content, mimetype in files]
            message = MessageRecord(
                ts=self._ws.next_ts(record),
                channel=record.id,
                user=user_id,
                text=text,
                blocks=blocks,
                thread_ts=root,
                files=file_ids,
                subtype="file_share" if file_ids else None,
                client_msg_id=None if file_ids else self._uuid(),
                author=self._ws.users[user_id].name,
            )
            for file_id in file_ids:
                self._ws.files[file_id].channels.append(record.id)
            self._ws.record_message(record, message)
            event = self._ws.message_event(record, message)
        return self.event_request(event)

    def _uuid(self) -> str:
        h = self._ws.random_hex(32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _user_file(self, user_id: str, name: str, content: bytes, mimetype: str) -> str:
        file_id = self._ws._new_id("F")
        self._ws.files[file_id] = FileRecord(
            id=file_id,
            name=name,
            title=name,
            user=user_id,
            created=self._ws.now(),
            length=len(content),
            upload_key="",
            content=bytes(content),
            mimetype=mimetype,
            completed=True,
        )
        return file_id

    def edit_as_user(self, user_id: str, channel: str, ts: str, text: str) -> SlackRequest:
        """A member edits their message: returns the ``message_changed`` event."""
        with self._lock:
            record = self._user_member(user_id, channel)
            message = self._find_message(record, ts)
            if message.user != user_id or message.bot_id is not None:
                raise UsageError("users can edit only their own messages")
            previous = self._ws.event_message(message)
            message.text = text
            message.edited = {"user": user_id, "ts": self._ws.next_ts()}
            event = self._ws.changed_event(record, previous, message)
        return self.event_request(event)

    def delete_as_user(self, user_id: str, channel: str, ts: str) -> SlackRequest:
        """A member deletes their message: returns the ``message_deleted`` event."""
        with self._lock:
            record = self._user_member(user_id, channel)
            message = self._find_message(record, ts)
            if message.user != user_id or message.bot_id is not None:
                raise UsageError("users can delete only their own messages")
            previous = self._ws.event_message(message)
            self._ws.messages[record.id].remove(message)
            event = self._ws.deleted_event(record, previous, ts)
        return self.event_request(event)

    def archive_as_user(self, user_id: str, channel: str) -> SlackRequest:
        """A member archives ``channel`` in Slack: returns ``channel_archive`` (``group_archive`` if private)."""
        with self._lock:
            record = self._user_member(user_id, channel)
            if record.is_general:
                raise UsageError("the general channel cannot be archived")
            record.is_archived = True
            event = self._ws.archive_event(record, user_id, archived=True)
        return self.event_request(event)

    def _find_message(self, record: ChannelRecord, ts: str) -> MessageRecord:
        for message in self._ws.messages[record.id]:
            if message.ts == ts:
                return message
        raise UsageError(f"no message {ts} in #{record.name}")

    def slash_command(
        self, command: str, user_id: str, channel: str, text: str = "", *, timestamp: int | None = None
    ) -> SlackRequest:
        """``/command text`` typed by ``user_id`` in ``channel``: the form-encoded request Slack sends."""
        if not command.startswith("/"):
            raise UsageError("a slash command starts with '/'")
        with self._lock:
            record = self._ws.require_channel(channel)
            user = self._ws.require_user(user_id)
            fields = {
                "token": self._verification_token,
                "team_id": self.team_id,
                "team_domain": self.team_domain,
                "channel_id": record.id,
                "channel_name": record.name if not record.is_private else "privategroup",
                "user_id": user.id,
                "user_name": user.name,
                "command": command,
                "text": text,
                "api_app_id": self.app_id,
                "is_enterprise_install": "false",
                "response_url": f"https://hooks.slack.com/commands/{self.team_id}/1/{self._ws.random_hex(24)}",
                "trigger_id": f"{self._ws.now()}.1.{self._ws.random_hex(32)}",
            }
        body = urllib.parse.urlencode(fields).encode("ascii")
        return SlackRequest.build(
            kind="slash_command",
            payload=fields,
            body=body,
            content_type="application/x-www-form-urlencoded",
            signing_secret=self._signing_secret,
            timestamp=timestamp,
        )

    def block_action(
        self,
        user_id: str,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        value: str | None = None,
        url: str | None = None,
        block_id: str = "actions",
        timestamp: int | None = None,
    ) -> SlackRequest:
        """``user_id`` clicks the button ``action_id`` on the message ``message_ts`` (``payload=`` form field)."""
        with self._lock:
            record = self._ws.require_channel(channel)
            user = self._ws.require_user(user_id)
            message = self._find_message(record, message_ts)
            action: dict[str, Any] = {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "action_ts": self._ws.next_ts(),
            }
            if value is not None:
                action["value"] = value
            if url is not None:
                action["url"] = url
            rendered = self._ws.render_message(message)
            payload = {
                "type": "block_actions",
                "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": self.team_id},
                "api_app_id": self.app_id,
                "token": self._verification_token,
                "container": {
                    "type": "message",
                    "message_ts": message.ts,
                    "channel_id": record.id,
                    "is_ephemeral": False,
                },
                "trigger_id": f"{self._ws.now()}.1.{self._ws.random_hex(32)}",
                "team": {"id": self.team_id, "domain": self.team_domain},
                "channel": {"id": record.id, "name": record.name},
                "message": rendered,
                "response_url": f"https://hooks.slack.com/actions/{self.team_id}/1/{self._ws.random_hex(24)}",
                "actions": [action],
                "is_enterprise_install": False,
            }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode("ascii")
        return SlackRequest.build(
            kind="block_actions",
            payload=payload,
            body=body,
            content_type="application/x-www-form-urlencoded",
            signing_secret=self._signing_secret,
            timestamp=timestamp,
        )

    # ---------------------------------------------------------------- Socket Mode

    def _connections_open(self, method: str, token: str | None) -> dict[str, Any]:
        """apps.connections.open (called with the lock held)."""
        if not token:
            raise ApiError("not_authed")
        if method != "apps.connections.open":
            raise ApiError("not_allowed_token_type")  # an app-level token calls nothing else
        if token != self._app_token:
            if token in self._ws.identities:
                raise ApiError("not_allowed_token_type")
            raise ApiError("invalid_auth")
        return {"ok": True, "url": self._socket_server(create=True).issue_url()}

    def _socket_server(self, *, create: bool = False) -> SocketModeServer:
        with self._lock:
            if self._socket is None:
                if not create:
                    raise UsageError("no Socket Mode client has called apps.connections.open yet")
                if self._server is None:
                    raise UsageError("the SlackEmulator is not started")
                self._socket = SocketModeServer(app_id=self._ws.app_id, seed=self._seed)
            return self._socket

    def socket_deliver(self, request: SlackRequest, *, timeout: float = 10.0) -> dict[str, Any] | None:
        """Send ``request`` (from :meth:`post_as_user`, :meth:`slash_command`, :meth:`block_action`, ...) as a
        Socket Mode envelope to the newest connected client and wait for its ack: returns the ack's payload
        (``None`` if it acked without one). ``TimeoutError`` if no client acks within ``timeout`` seconds.

        A request made with :meth:`SlackRequest.retry` goes out with its ``retry_attempt`` and ``retry_reason``.
        Blocking: from async code use :meth:`asocket_deliver`.
        """
        types = {"event": "events_api", "slash_command": "slash_commands", "block_actions": "interactive"}
        envelope_type = types.get(request.kind)
        if envelope_type is None:
            raise UsageError(f"a {request.kind} request does not travel over Socket Mode")
        retry = request.headers.get("X-Slack-Retry-Num")
        ack = self._socket_server().deliver(
            envelope_type,
            request.payload,
            accepts_response_payload=envelope_type == "slash_commands",
            retry_attempt=int(retry) if retry else 0,
            retry_reason=request.headers.get("X-Slack-Retry-Reason", "") if retry else "",
            timeout=timeout,
        )
        return None if ack.payload is None else dict(ack.payload)

    async def asocket_deliver(self, request: SlackRequest, *, ack_timeout: float = 10.0) -> dict[str, Any] | None:
        """:meth:`socket_deliver` without blocking the event loop (asyncio or trio)."""
        return await anyio.to_thread.run_sync(lambda: self.socket_deliver(request, timeout=ack_timeout))

    def socket_disconnect(self, reason: str = "refresh_requested", *, timeout: float = 10.0) -> None:
        """Send the newest client a ``disconnect`` message and wait until it has reconnected (blocking)."""
        self._socket_server().disconnect(reason, timeout=timeout)

    def socket_wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until a Socket Mode client is connected; ``False`` if none is after ``timeout`` seconds."""
        return self._socket_server(create=True).wait_connected(timeout)

    @property
    def socket_acks(self) -> list[SocketAck]:
        """Every Socket Mode ack received, in order."""
        with self._lock:
            server = self._socket
        return [] if server is None else server.acks

    @property
    def socket_connections(self) -> int:
        """Socket Mode connections open now."""
        with self._lock:
            server = self._socket
        return 0 if server is None else server.connection_count

    @property
    def socket_connections_opened(self) -> int:
        """Socket Mode connections accepted so far, including closed ones."""
        with self._lock:
            server = self._socket
        return 0 if server is None else server.connections_opened
