"""Secrets out of log records: a connector registers its tokens, and every log record made in the process (by any
library: httpx logs request URLs, and Telegram's bot token is part of every Bot API URL) has them replaced with
``***`` before any handler sees it.

It works through :func:`logging.setLogRecordFactory` (chained to the factory in place), because a filter on a
logger does not see the records of that logger's children. :class:`SecretFilter` does the same for a handler of
the host's own. Secrets shorter than :data:`MIN_SECRET_LENGTH` are not tracked: they would mask ordinary words.

Tokens of a known shape are masked too, registered or not (a library's error may quote a request of a connector
built elsewhere): Slack tokens, Telegram bot tokens, ``Authorization`` values and bearer tokens, and credentials in
URL parameters (:data:`PATTERNS`). The message, the formatted traceback and the stack of each record are masked.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import urllib.parse
import weakref
from typing import Any

__all__ = ["MASK", "MIN_SECRET_LENGTH", "PATTERNS", "SecretFilter", "install", "protect", "redact"]

MIN_SECRET_LENGTH = 8
MASK = "***"

#: Tokens masked wherever they appear, as (pattern, replacement).
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
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
)

_lock = threading.Lock()
_owners: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
_installed = False


def protect(owner: object, *secrets: str | None) -> None:
    """Keep ``secrets`` out of every log record for as long as ``owner`` lives (idempotent)."""
    forms: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
            forms.update({secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)})
    with _lock:
        _owners[owner] = tuple(sorted(forms, key=len, reverse=True))
        _install()


def install() -> None:
    """Mask every log record made from now on, even before any secret is registered (idempotent)."""
    with _lock:
        _install()


def _current() -> tuple[str, ...]:
    with _lock:
        return tuple(s for forms in list(_owners.values()) for s in forms)


def redact(text: str) -> str:
    """``text`` with every protected secret and every token of a known shape (:data:`PATTERNS`) replaced by
    ``***``."""
    for secret in _current():
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its format: let logging report it as usual
        return
    masked = redact(message)
    if masked != message:
        record.msg = masked
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        masked = redact(text)
        if masked != text:
            # Formatters write exc_text when there is one: the traceback goes out masked.
            record.exc_text = masked
            record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _install() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class SecretFilter(logging.Filter):
    """A filter for a handler: removes the protected secrets from each record it passes (and passes them all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True
