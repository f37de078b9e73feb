"""Slack request signing, version 0 (sans-I/O).

``X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{timestamp}:{raw body}")>`` and
``X-Slack-Request-Timestamp: {timestamp}``; requests older or newer than five minutes are refused.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from ..exceptions import InvalidRequest

__all__ = ["MAX_SKEW_SECONDS", "compute_signature", "header", "sign_headers", "verify_signature"]

#: Slack's replay window: a timestamp further than this from now is refused.
MAX_SKEW_SECONDS = 300


def compute_signature(signing_secret: str, timestamp: str | int, body: bytes) -> str:
    """The ``v0=...`` signature Slack sends for ``body`` at ``timestamp``."""
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    return "v0=" + hmac.digest(signing_secret.encode("utf-8"), base, "sha256").hex()


def sign_headers(signing_secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack adds to a request carrying ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": compute_signature(signing_secret, ts, body),
    }


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (given in its usual spelling) in ``headers``, whatever the case of its key."""
    # The usual spelling first (a dict built by hand or by a framework), then lower case (ASGI), then any case.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    value = headers.get(lowered)
    if value is not None:
        return value
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_signature(signing_secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
    """Raise :class:`InvalidRequest` (status 401) unless ``headers`` carry a valid, fresh signature for ``body``.

    Header names are case-insensitive. The comparison is constant-time.
    """
    raw_ts = header(headers, "X-Slack-Request-Timestamp")
    signature = header(headers, "X-Slack-Signature")
    if raw_ts is None or signature is None:
        raise InvalidRequest("missing X-Slack-Signature or X-Slack-Request-Timestamp", status=401)
    raw_ts = raw_ts.strip()
    if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 12:
        raise InvalidRequest("X-Slack-Request-Timestamp is not a Unix time in seconds", status=401)
    current = time.time() if now is None else now
    if abs(current - int(raw_ts)) > MAX_SKEW_SECONDS:
        raise InvalidRequest("X-Slack-Request-Timestamp is outside the 5-minute window", status=401)
    expected = compute_signature(signing_secret, raw_ts, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise InvalidRequest("X-Slack-Signature does not match the request body", status=401)
