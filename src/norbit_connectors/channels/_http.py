"""Shared HTTP plumbing of the customer-side connectors: a lazily imported httpx client, capped downloads,
constant-time secret checks, and the webhook handshake of Meta's platforms."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .._connector import HttpResponse
from .._json import MAX_JSON_DEPTH, json_depth
from ..exceptions import ConfigurationError, InvalidRequest, TransportError
from ._fetch import MediaClient

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpClient",
    "clean_strings",
    "header",
    "json_depth",
    "json_object",
    "meta_handshake",
    "require_httpx",
    "same_secret",
    "verify_meta_signature",
]

INSTALL_HINT = 'pip install "norbit-connectors[http]"'


def require_httpx() -> ModuleType:
    """The httpx module, or a ConfigurationError that says how to install it."""
    try:
        return importlib.import_module("httpx")
    except ImportError:
        raise ConfigurationError(f"the customer-side connectors need httpx: {INSTALL_HINT}") from None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing value never matches."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequest (400) for one that is not JSON, not an object, or
    nested deeper than :data:`MAX_JSON_DEPTH`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not JSON") from None
    except RecursionError:
        raise InvalidRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body is not a JSON object")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
    if _MAYBE_UNSTORABLE.search(body):
        cleaned: dict[str, Any] = clean_strings(data)
        return cleaned
    return data


# A lone surrogate or a control character reaches a decoded string only through a \u, \b or \f escape, or (DEL and
# the C1 controls, and surrogates encoded as if they were characters) as raw UTF-8: bodies with neither are returned
# as parsed.
_MAYBE_UNSTORABLE = re.compile(
    rb"\\[bf]|\\u(?:[dD][89a-fA-F]|00[0-1]|007[fF]|00[89])|\x7f|\xc2[\x80-\x9f]|\xed[\xa0-\xbf]"
)
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


#: Keys whose values are ids in the platforms' webhooks: cleaning must not make two of them one.
ID_KEYS = frozenset({"id", "mid", "from", "wa_id", "recipient_id", "message_id", "update_id", "file_id"})


def clean_strings(value: Any, key: Any = None) -> Any:
    """``value`` (decoded JSON, at most :data:`MAX_JSON_DEPTH` deep) with every lone surrogate and control
    character other than tab and line breaks, in keys and values, replaced by U+FFFD: no store can keep them.

    An id (the value of a key in :data:`ID_KEYS`) that would change becomes ``sha256:<hex>`` of its raw value
    instead, so that two ids differing only in such characters stay two ids."""
    if isinstance(value, str):
        cleaned = _UNSTORABLE.sub("\ufffd", value)
        if cleaned != value and key in ID_KEYS:
            return raw_digest(value)
        return cleaned
    if isinstance(value, list):
        return [clean_strings(item, key) for item in value]
    if isinstance(value, dict):
        return {clean_strings(k): clean_strings(v, k) for k, v in value.items()}
    return value


def raw_digest(value: str) -> str:
    """``sha256:<hex>`` of ``value`` as it was sent (lone surrogates included)."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def verify_meta_signature(headers: Mapping[str, str], body: bytes, app_secret: str) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`` (401 when missing or wrong)."""
    given = header(headers, "X-Hub-Signature-256")
    if not given:
        raise InvalidRequest("missing X-Hub-Signature-256", status=401)
    scheme, _, digest = given.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise InvalidRequest("X-Hub-Signature-256 is not a sha256 signature", status=401)
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not same_secret(digest.lower(), expected):
        raise InvalidRequest("the X-Hub-Signature-256 signature does not match", status=401)


def meta_handshake(query: str, verify_token: str) -> HttpResponse:
    """Answer Meta's subscription check: ``hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``."""
    try:
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    except ValueError:
        raise InvalidRequest("malformed query string") from None
    if params.get("hub.mode") != "subscribe" or "hub.challenge" not in params:
        raise InvalidRequest("expected hub.mode=subscribe with a hub.challenge")
    if not same_secret(params.get("hub.verify_token"), verify_token):
        raise InvalidRequest("wrong hub.verify_token", status=403)
    return HttpResponse.text(200, params["hub.challenge"])


class HttpClient:
    """One httpx.AsyncClient per running connector (a short-lived one when used outside a hub).

    Errors of the connection itself become :class:`TransportError` without the URL, which may hold a token.
    """

    def __init__(self, service: str, *, timeout: float = 30.0) -> None:
        self.service = service
        self.timeout = timeout
        #: Media downloads: resolved once, checked, never through the environment's proxy.
        self.media = MediaClient(service, timeout=timeout)
        self._client: httpx.AsyncClient | None = None
        self._open = False

    async def open(self) -> None:
        # The client itself is made at the first request: building its TLS context is not free.
        require_httpx()
        self._open = True

    async def close(self) -> None:
        self._open = False
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _shared(self) -> httpx.AsyncClient | None:
        if self._open and self._client is None:
            self._client = require_httpx().AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request and read the whole answer (any status)."""
        httpx_module = require_httpx()
        try:
            shared = self._shared()
            if shared is not None:
                return await shared.request(method, url, **kwargs)
            async with httpx_module.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                response: httpx.Response = await client.request(method, url, **kwargs)
                return response
        except httpx_module.HTTPError as exc:
            raise TransportError(
                f"{self.service}: the request failed ({type(exc).__name__})", service=self.service
            ) from None

    async def fetch(
        self,
        url: str,
        *,
        limit: int,
        trusted: Iterable[str],
        token: str | None = None,
        token_origins: Iterable[str] = (),
    ) -> bytes | None:
        """:meth:`MediaClient.fetch <norbit_connectors.channels._fetch.MediaClient.fetch>` with this client's
        :attr:`media` settings."""
        return await self.media.fetch(url, limit=limit, trusted=trusted, token=token, token_origins=token_origins)
