"""Dead-letter reasons without secrets: what a reason may quote of an exception is cleaned before it is stored,
logged or handed to ``on_dead_letter``.

Our own errors never carry a secret, but a library's may quote a request: a Telegram URL holds the bot token in
its path, an ``Authorization`` header a bearer token, a Graph URL an ``access_token`` parameter. :func:`clean_reason`
replaces each such secret with ``***`` (every secret a connector registered with :mod:`._redact` too) and
bounds the length.
"""

from __future__ import annotations

import re

from ._redact import redact

__all__ = ["MASK", "MAX_REASON_LENGTH", "clean_reason"]

MASK = "***"
#: Longest reason kept for a dead letter, in characters.
MAX_REASON_LENGTH = 2000

_PATTERNS = [
    # Slack tokens: bot, user, app-level, configuration, refresh.
    (re.compile(r"x(?:ox[a-z]|app)-[A-Za-z0-9-]+"), MASK),
    # Telegram bot tokens: <bot id>:<35 characters>, alone or in /bot<token>/ paths.
    (re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}"), MASK),
    # Authorization header values and bearer tokens.
    (re.compile(r"(?i)\b(bearer|basic|bot|oauth)\s+[^\s,;\"']+"), rf"\1 {MASK}"),
    (re.compile(r"(?i)(authorization\s*[:=]\s*)[^\r\n,;]+"), rf"\1{MASK}"),
    # Credentials as URL query parameters or key=value pairs.
    (
        re.compile(
            r"(?i)\b((?:access_|refresh_|id_|auth_|bot_|user_|app_)?token|secret|client_secret|app_secret|"
            r"password|passwd|appsecret_proof|api_key|apikey|signature)=[^&\s\"']+"
        ),
        rf"\1={MASK}",
    ),
]


def clean_reason(text: str, *, limit: int = MAX_REASON_LENGTH) -> str:
    """``text`` with every recognised secret replaced by ``***``, cut to ``limit`` characters."""
    text = redact(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
