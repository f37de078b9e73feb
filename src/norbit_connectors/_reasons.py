"""Dead-letter reasons without secrets: what a reason may quote of an exception is cleaned before it is stored,
logged or handed to ``on_dead_letter``.

Our own errors never carry a secret, but a library's may quote a request: a Telegram URL holds the bot token in
its path, an ``Authorization`` header a bearer token, a Graph URL an ``access_token`` parameter. :func:`clean_reason`
masks them with :func:`._redact.redact`, the masking every log record goes through (the same patterns, and every
secret a connector registered), and bounds the length.
"""

from __future__ import annotations

from ._redact import MASK, redact

__all__ = ["MASK", "MAX_REASON_LENGTH", "clean_reason"]

#: Longest reason kept for a dead letter, in characters.
MAX_REASON_LENGTH = 2000


def clean_reason(text: str, *, limit: int = MAX_REASON_LENGTH) -> str:
    """``text`` with every recognised secret replaced by ``***``, cut to ``limit`` characters."""
    text = redact(text)
    if len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text
