"""The one place that talks to Slack's Web API: slack_sdk's WebClient in anyio worker threads.

slack_sdk's own retries are off (``retry_handlers=[]``): our limiter paces calls, and this module retries a 429
after its Retry-After and a 5xx or connection error with jittered backoff, a few times inline; what still fails is
raised as a NorbitError for the hub to reschedule. slack_sdk errors are mapped to our error tree here and only here.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import random
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError

from ..exceptions import NorbitError, NotFound, PermissionDenied, RateLimited, RemoteError, TransportError
from ._config import SlackConfig
from ._files import may_fetch
from ._limits import SlackLimiter
from ._retry_after import parse_retry_after

__all__ = ["SlackTransport", "environment_proxy_allowed", "map_slack_error"]

log = logging.getLogger("norbit_connectors.slack")

_PERMISSION = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "not_allowed_token_type",
        "ekm_access_denied",
        "access_denied",
        "team_access_not_granted",
        "restricted_action",
        "not_authorized",
        "org_login_required",
    }
)
_NOT_FOUND = frozenset(
    {
        "channel_not_found",
        "user_not_found",
        "users_not_found",
        "message_not_found",
        "file_not_found",
        "thread_not_found",
    }
)
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"})

#: Methods that must not be repeated blindly after a lost answer: Slack may have done them already. Their
#: callers reconcile instead (message metadata in the channel's history), on the job's next attempt.
NOT_IDEMPOTENT = frozenset(
    {"chat.postMessage", "chat.postEphemeral", "conversations.create", "files.completeUploadExternal"}
)

INLINE_ATTEMPTS = 3
MAX_INLINE_WAIT = 15.0


def map_slack_error(method: str, status: int, headers: Mapping[str, Any], data: Mapping[str, Any]) -> NorbitError:
    """Our error for Slack's answer to ``method``: HTTP ``status``, ``headers`` and JSON ``data``."""
    code = str(data.get("error") or f"http_{status}")
    text = f"Slack {method} failed: {code}"
    if status == 429 or code == "ratelimited":
        raw = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
        return RateLimited(text, retry_after=parse_retry_after(raw), service="slack")
    if status >= 500 or code in _TRANSIENT:
        return TransportError(text, code=code, service="slack")
    if code in _PERMISSION:
        needed = data.get("needed")
        if needed:
            text += f" (needed: {needed}; add the scope in the app's OAuth & Permissions and reinstall)"
        return PermissionDenied(text, code=code, service="slack", needed=str(needed) if needed else None)
    if code in _NOT_FOUND:
        return NotFound(text, code=code, service="slack")
    return RemoteError(text, code=code, service="slack")


class SlackTransport:
    """Calls Slack methods with the bot token (or the user token) and returns the response data."""

    def __init__(self, config: SlackConfig, *, limiter: SlackLimiter | None = None) -> None:
        self._config = config
        self.limiter = limiter if limiter is not None else SlackLimiter()
        self._bot = WebClient(
            token=config.bot_token, base_url=config.base_url, timeout=int(config.timeout), retry_handlers=[]
        )
        self._user = (
            WebClient(token=config.user_token, base_url=config.base_url, timeout=int(config.timeout), retry_handlers=[])
            if config.user_token
            else None
        )

    def __repr__(self) -> str:
        return f"SlackTransport(base_url={self._config.base_url!r})"

    @property
    def has_user_token(self) -> bool:
        return self._user is not None

    async def call(self, method: str, *, as_user: bool = False, **args: Any) -> dict[str, Any]:
        """Call ``method`` (e.g. ``"chat.postMessage"``) with ``args``; the response's data on success."""
        client = self._user if as_user else self._bot
        if client is None:
            raise PermissionDenied(f"Slack {method} needs a user token (SlackConfig.user_token)", service="slack")
        channel = args.get("channel") if isinstance(args.get("channel"), str) else None
        bound = getattr(client, method.replace(".", "_"), None)
        for attempt in range(1, INLINE_ATTEMPTS + 1):
            await self.limiter.acquire(method, channel)
            try:
                if bound is not None:
                    response = await anyio.to_thread.run_sync(partial(bound, **args), abandon_on_cancel=True)
                else:
                    response = await anyio.to_thread.run_sync(
                        partial(client.api_call, method, json=args), abandon_on_cancel=True
                    )
                data: dict[str, Any] = dict(response.data) if isinstance(response.data, dict) else {}
                return data
            except SlackApiError as exc:
                resp = exc.response
                data = resp.data if isinstance(resp.data, dict) else {}
                error = map_slack_error(method, int(resp.status_code), dict(resp.headers or {}), data)
            except (SlackRequestError, SlackClientError, json.JSONDecodeError) as exc:
                error = TransportError(f"Slack {method} failed: {type(exc).__name__}", code="client", service="slack")
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                error = TransportError(
                    f"Slack {method} could not be reached: {type(exc).__name__}", code="connection", service="slack"
                )
            if isinstance(error, RateLimited):
                await self.limiter.rate_limited(method, channel, error.retry_after)
                if attempt < INLINE_ATTEMPTS and error.retry_after <= MAX_INLINE_WAIT:
                    log.info("Slack %s rate limited; waiting %.1fs", method, error.retry_after)
                    await self.limiter.sleep(error.retry_after)
                    continue
            elif isinstance(error, TransportError) and attempt < INLINE_ATTEMPTS and method not in NOT_IDEMPOTENT:
                await anyio.sleep(random.uniform(0.05, 0.2) * 2**attempt)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def upload(self, *, channel: str, filename: str, content: bytes, title: str | None = None) -> dict[str, Any]:
        """Upload ``content`` into ``channel`` with files upload v2 (getUploadURLExternal, the upload, complete)."""
        got = await self.call("files.getUploadURLExternal", filename=filename, length=len(content))
        upload_url = str(got["upload_url"])
        file_id = str(got["file_id"])

        def post() -> int:
            request = urllib.request.Request(upload_url, data=content, method="POST")
            request.add_header("Content-Type", "application/octet-stream")
            with urllib.request.urlopen(request, timeout=self._config.timeout) as response:
                return int(response.status)

        try:
            status = await anyio.to_thread.run_sync(post, abandon_on_cancel=True)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            raise TransportError(f"file upload failed: {type(exc).__name__}", code="upload", service="slack") from exc
        if status != 200:
            raise TransportError(f"file upload failed with HTTP {status}", code=f"http_{status}", service="slack")
        files = [{"id": file_id, "title": title or filename}]
        return await self.call("files.completeUploadExternal", files=files, channel_id=channel)

    async def download(self, url: str, *, limit: int) -> bytes | None:
        """Fetch a file Slack hosts (``url_private``) with the bot token; None when larger than ``limit``.

        Only URLs on ``https://files.slack.com`` or on ``base_url``'s origin are fetched (see :mod:`._files`),
        and redirects are not followed: a refused URL or a redirect raises :class:`NotFound` before the token
        goes anywhere else. An environment proxy (``HTTPS_PROXY``) is used only for ``https://`` to a host that
        is not loopback (see :func:`environment_proxy_allowed`): the token never crosses a proxy in clear."""
        if not may_fetch(url, base_url=self._config.base_url):
            raise NotFound("Slack file URL refused: not on files.slack.com or the API's origin", code="refused")
        token = self._config.bot_token

        def fetch() -> tuple[int, bytes | None]:
            request = urllib.request.Request(url, method="GET", headers={"Authorization": f"Bearer {token}"})
            opener = _opener_without_redirects(environment_proxy=environment_proxy_allowed(url))
            with opener.open(request, timeout=self._config.timeout) as response:
                status = int(response.status)
                if status != 200:
                    return status, None
                body: bytes = response.read(limit + 1)
                return status, (None if len(body) > limit else body)

        try:
            status, content = await anyio.to_thread.run_sync(fetch, abandon_on_cancel=True)
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            raise TransportError(f"Slack file download failed: {type(exc).__name__}", code="connection") from None
        if status == 200:
            return content
        if 300 <= status < 400:
            raise NotFound(f"Slack file download answered a redirect (HTTP {status}); not followed", code="redirect")
        if 400 <= status < 500 and status not in (408, 429):
            raise NotFound(f"Slack file download failed with HTTP {status}", code=str(status))
        raise TransportError(f"Slack file download failed with HTTP {status}", code=str(status))


def environment_proxy_allowed(url: str) -> bool:
    """Whether a request with a token to ``url`` may go through a proxy named in the environment: only over
    ``https://`` (the proxy tunnels TLS and sees no header) to a host that is not this one (a loopback address
    is never reached through a proxy)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme.lower() != "https" or not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _opener_without_redirects(*, environment_proxy: bool) -> urllib.request.OpenerDirector:
    """An opener for http(s) only that hands back every answer as it came: no redirect is followed, no other
    scheme (``file:``, ``ftp:``, ``data:``) is served, and error statuses are not turned into exceptions. The
    environment's proxies are used only with ``environment_proxy``."""
    opener = urllib.request.OpenerDirector()
    proxies = urllib.request.ProxyHandler(None if environment_proxy else {})
    for handler in (proxies, urllib.request.HTTPHandler(), urllib.request.HTTPSHandler()):
        opener.add_handler(handler)
    return opener
