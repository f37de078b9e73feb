"""Secrets out of log records: a connector registers its tokens, and every log record made in the process (by any
library: httpx logs request URLs, and Telegram's bot token is part of every Bot API URL) has them replaced with
``***`` before any handler sees it.

It works through :func:`logging.setLogRecordFactory` (chained to the factory in place), because a filter on a
logger does not see the records of that logger's children. :class:`SecretFilter` does the same for a handler of
the host's own. Secrets shorter than :data:`MIN_SECRET_LENGTH` are not tracked: they would mask ordinary words.
"""

from __future__ import annotations

import logging
import threading
import traceback
import urllib.parse
import weakref
from typing import Any

__all__ = ["MIN_SECRET_LENGTH", "SecretFilter", "protect", "redact"]

MIN_SECRET_LENGTH = 8
MASK = "***"

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


def _current() -> tuple[str, ...]:
    with _lock:
        return tuple(s for forms in list(_owners.values()) for s in forms)


def redact(text: str) -> str:
    """``text`` with every protected secret replaced by ``***``."""
    for secret in _current():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _scrub(record: logging.LogRecord) -> None:
    secrets = _current()
    if not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its format: let logging report it as usual
        return
    if any(s in message for s in secrets):
        record.msg = redact(message)
        record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if any(s in text for s in secrets):
            record.exc_text = redact(text)
            record.exc_info = None
    if record.stack_info and any(s in record.stack_info for s in secrets):
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
