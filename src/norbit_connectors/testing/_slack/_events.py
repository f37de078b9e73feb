"""Requests Slack sends to an app (Events API, slash commands, interactivity), signed and ready to deliver."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio.to_thread
import attrs

from ...slack._signature import sign_headers

__all__ = ["DeliveryResult", "HttpResponseLike", "SlackRequest"]


class HttpResponseLike(Protocol):
    """What an app's ``handle_http`` returns."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """The app's answer to a request delivered over HTTP."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen(kw_only=True)
class SlackRequest:
    """One request Slack would send to the app's Request URL.

    ``payload`` is the decoded content (the event envelope, the slash command fields or the interaction payload);
    ``body`` and ``headers`` are exactly what goes over the wire, signed with the workspace's signing secret.
    """

    kind: str  # "event", "url_verification", "slash_command" or "block_actions"
    payload: Mapping[str, Any]
    body: bytes
    headers: Mapping[str, str]
    signing_secret: str = attrs.field(repr=False)
    event_id: str | None = None

    @classmethod
    def build(
        cls,
        *,
        kind: str,
        payload: Mapping[str, Any],
        body: bytes,
        content_type: str,
        signing_secret: str,
        timestamp: int | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        event_id: str | None = None,
    ) -> SlackRequest:
        headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        headers.update(sign_headers(signing_secret, body, timestamp=timestamp))
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return cls(
            kind=kind,
            payload=payload,
            body=body,
            headers=headers,
            signing_secret=signing_secret,
            event_id=event_id,
        )

    @property
    def event(self) -> Mapping[str, Any]:
        """The inner ``event`` of an Events API envelope (empty for other kinds)."""
        inner = self.payload.get("event")
        return inner if isinstance(inner, Mapping) else {}

    def retry(self, num: int = 1, reason: str = "http_timeout", *, timestamp: int | None = None) -> SlackRequest:
        """The same delivery again, as Slack retries it: same body and event_id, fresh signature, retry headers."""
        return SlackRequest.build(
            kind=self.kind,
            payload=self.payload,
            body=self.body,
            content_type=self.headers["Content-Type"],
            signing_secret=self.signing_secret,
            timestamp=timestamp,
            retry_num=num,
            retry_reason=reason,
            event_id=self.event_id,
        )

    def resign(self, *, timestamp: int | None = None, secret: str | None = None) -> SlackRequest:
        """The same request signed at another time or with another secret (to test signature checks)."""
        return SlackRequest.build(
            kind=self.kind,
            payload=self.payload,
            body=self.body,
            content_type=self.headers["Content-Type"],
            signing_secret=secret if secret is not None else self.signing_secret,
            timestamp=timestamp,
            event_id=self.event_id,
        )

    async def deliver(
        self, handler: Callable[[Mapping[str, str], bytes], Awaitable[HttpResponseLike]]
    ) -> HttpResponseLike:
        """Hand the request to an app's ``handle_http(headers, body)`` and return its response."""
        return await handler(dict(self.headers), self.body)

    def post(self, url: str, *, timeout: float = 10.0) -> DeliveryResult:
        """POST the request to ``url`` (blocking) and return the app's answer, whatever its status."""
        request = urllib.request.Request(url, data=self.body, headers=dict(self.headers), method="POST")
        # Loopback deliveries must never go through a proxy from the environment.
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


def json_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
