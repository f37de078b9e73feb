"""Secrets out of log records: a connector registers its tokens, and every log record made in the process (by any
library: httpx logs request URLs, and Telegram's bot token is part of every Bot API URL) has them replaced with
``***`` before any handler sees it.

Two hooks, both chained to what is in place: the log record factory (:func:`logging.setLogRecordFactory`; a filter
on a logger does not see the records of that logger's children) masks the message, the arguments and the traceback,
and a wrapper of :meth:`logging.Logger.makeRecord` masks the ``extra=`` fields, which are set on the record after
the factory made it. :func:`install` puts back whichever hook something removed (it runs on every :func:`protect`
and every hub's construction) and :func:`uninstall` takes ours off. :class:`SecretFilter` does the same masking for
a handler of the host's own. Secrets shorter than :data:`MIN_SECRET_LENGTH` are not tracked: they would mask
ordinary words.

A masked record keeps its shape, so that every formatter can still read it: ``args`` keeps its length and its
non-secret values (only a string, or a value whose text holds a secret, is replaced by its masked text; a mapping is
masked value by value), a message that is not a string (a dict from structlog) keeps its type, and ``exc_info``
stays. When the traceback holds a secret, ``exc_text`` is set to the masked traceback (what the stdlib
:class:`logging.Formatter` writes) and the exception in ``exc_info`` is replaced by a :class:`MaskedError` that
reads as the original, masked, with the same traceback and the same chain of causes: a handler that formats
``exc_info`` itself (Sentry-style, structlog's) gets no secret either. The exception object itself is never
modified: the program may still be handling it.

Tokens of a known shape are masked too, registered or not (a library's error may quote a request of a connector
built elsewhere): Slack, Telegram, Discord-style bot and Meta tokens, ``Authorization`` values and bearer tokens,
credentials in URL parameters, ``key=value`` pairs and JSON or Python-repr ``"key": "value"`` pairs, and passwords
in URLs (:data:`PATTERNS`, each tried only when a word it needs is in the text: most records run none). Ordinary
text (``bot was blocked by the user``, ``Basic auth failed``) is left alone: a token must look like one (a digit,
``+`` or ``/`` in it, or 24 characters).

Warnings: :mod:`warnings` writes to stderr, not through logging; a host that wants them masked too routes them
through logging with :func:`logging.captureWarnings`.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "PATTERNS",
    "MaskedError",
    "SecretFilter",
    "install",
    "protect",
    "redact",
    "uninstall",
]

MIN_SECRET_LENGTH = 8
MASK = "***"

# A value that looks like a credential, not a word: 8 or more token characters with a digit, "+" or "/", or 24 or
# more of them (no English word is), with base64 padding.
_TOKENISH = r"(?:(?=[A-Za-z0-9._~+/-]*[0-9+/])[A-Za-z0-9._~+/-]{8,}|[A-Za-z0-9._~+/-]{24,})=*"
# A parameter or field name that holds a credential: anything ending in token, secret, password, ...
_KEY = r"[A-Za-z0-9_.-]*?(?:token|secret|password|passwd|passphrase|appsecret_proof|api_?key|signature)"
_KEY_WORDS = ("token", "secret", "passw", "passphrase", "key", "signature")

#: Tokens masked wherever they appear, as (words that must be in the text for the pattern to be tried, kept
#: prefix, masked part, kept suffix): what the prefix and the suffix match is written back around ``***``. The
#: words are looked for in the lowercased text, a word starting with ``^`` in the text as it is; ``re:`` makes it
#: a regular expression. Most records hold none of them, and then no pattern runs at all.
PATTERNS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    # Authorization header values: after a scheme anything is the credential, without one only a token-like value.
    (
        ("uthorization",),
        r"(?i:authorization[\"']?\s*[:=]\s*[\"']?)",
        rf"(?i:(?:bearer|basic|bot|oauth|token)\s+[A-Za-z0-9._~+/:-]+=*|{_TOKENISH})",
        "",
    ),
    # Bearer, Basic and OAuth credentials, and Discord-style "Bot <token>".
    (("bearer", "basic", "oauth"), r"(?i:\b(?:bearer|basic|oauth)\s+)", _TOKENISH, ""),
    (("^Bot",), r"\bBot\s+", r"[A-Za-z0-9._-]{50,}", ""),
    # Credentials as URL query parameters or key=value pairs (hub.verify_token=, page_access_token=, ...).
    (_KEY_WORDS, rf"(?i:(?<![A-Za-z0-9_.-]){_KEY}=)", r"[^&\s\"'<>]+", ""),
    # JSON and Python-repr fields: "access_token": "...", 'client_secret': '...'.
    (_KEY_WORDS, rf"(?i:[\"']{_KEY}[\"']\s*:\s*\")", r'(?:[^"\\]|\\.)*', '"'),
    (_KEY_WORDS, rf"(?i:[\"']{_KEY}[\"']\s*:\s*')", r"(?:[^'\\]|\\.)*", "'"),
    # Passwords in URLs: scheme://user:password@host.
    (("@",), r"(?i:\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)", r"[^@/?#\s]+", "@"),
    # Slack tokens: bot, user, app-level, configuration, refresh, also glued to a word ("/botxoxb-..."), but not
    # "checkboxapp-x" or "xapp-level": what follows the prefix must look like a token.
    (
        ("^xox", "^xapp-"),
        "",
        r"x(?:ox[a-z]|app)-(?:(?=[A-Za-z0-9-]*[0-9])[A-Za-z0-9-]{8,}|[A-Za-z0-9-]{24,})",
        "",
    ),
    # Telegram bot tokens: <bot id>:<35 characters>, alone or in /bot<token>/ paths.
    (("re::[A-Za-z0-9_-]{20}",), "(?<![0-9])", r"[0-9]{5,}:[A-Za-z0-9_-]{20,}", ""),
    # Meta (Graph API) access tokens.
    (("^EAA",), "(?<![A-Za-z0-9])", r"EAA[A-Za-z0-9]{20,}", ""),
)


class _Words:
    """The words a pattern needs (see :data:`PATTERNS`), looked for with plain loops: cheaper than any()."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.folded = tuple(w for w in words if not w.startswith(("^", "re:")))
        self.exact = tuple(w[1:] for w in words if w.startswith("^"))
        self.searches = tuple(re.compile(w[3:]).search for w in words if w.startswith("re:"))

    def present(self, text: str, lower: str) -> bool:
        for word in self.folded:
            if word in lower:
                return True
        for word in self.exact:
            if word in text:
                return True
        for search in self.searches:  # noqa: SIM110 - a loop: this runs for every record, any() costs more
            if search(text) is not None:
                return True
        return False


_RULES = tuple(
    (_Words(words), re.compile(f"(?P<k>{prefix})(?:{masked})(?P<t>{suffix})"))
    for words, prefix, masked, suffix in PATTERNS
)
_ANY = _Words(tuple(dict.fromkeys(w for words, *_ in PATTERNS for w in words)))
_REPLACEMENT = rf"\g<k>{MASK}\g<t>"


_lock = threading.RLock()
_owners: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
_version = 0
_cache: tuple[int, int, tuple[str, ...]] = (-1, -1, ())


def protect(owner: object, *secrets: str | None) -> None:
    """Keep ``secrets`` out of every log record for as long as ``owner`` lives (idempotent)."""
    global _version
    forms: set[str] = set()
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
            forms.update({secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)})
    with _lock:
        _owners[owner] = tuple(sorted(forms, key=len, reverse=True))
        _version += 1
    install()


def _current() -> tuple[str, ...]:
    global _cache
    version, count, secrets = _cache
    if version == _version and count == len(_owners):  # an owner gone shortens the dictionary
        return secrets
    with _lock:
        found = sorted({s for forms in list(_owners.values()) for s in forms}, key=len, reverse=True)
        _cache = (_version, len(_owners), tuple(found))
        return _cache[2]


def redact(text: str) -> str:
    """``text`` with every protected secret and every token of a known shape (:data:`PATTERNS`) replaced by
    ``***``."""
    for secret in _current():
        if secret in text:
            text = text.replace(secret, MASK)
    lower = text.lower()
    if not _ANY.present(text, lower):
        return text
    for words, pattern in _RULES:
        if words.present(text, lower):
            masked = pattern.sub(_REPLACEMENT, text)
            if masked != text:
                text, lower = masked, masked.lower()
    return text


# -- records ---------------------------------------------------------------------------------------------------


class MaskedError(Exception):
    """Stands for an exception whose text held a secret, in a log record's ``exc_info``: it reads as the original
    (``ValueError: ...``, masked), with the original's traceback and its chain of causes, masked the same way."""


def _masked_exception(error: BaseException, seen: dict[int, MaskedError]) -> MaskedError:
    if id(error) in seen:
        return seen[id(error)]
    text = "".join(traceback.format_exception_only(type(error), error)).rstrip("\n")
    stand_in = MaskedError(redact(text)).with_traceback(error.__traceback__)
    seen[id(error)] = stand_in
    if error.__cause__ is not None:
        stand_in.__cause__ = _masked_exception(error.__cause__, seen)
    if error.__context__ is not None:
        stand_in.__context__ = _masked_exception(error.__context__, seen)
    stand_in.__suppress_context__ = error.__suppress_context__
    return stand_in


def _masked_value(value: object) -> object:
    """``value`` itself when its text holds no secret, else its masked text."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, (int, float, bool)):
        return value
    try:
        text, shown = str(value), repr(value)
    except Exception:  # a value that cannot show itself cannot show a secret either
        return value
    masked = redact(text)
    if masked != text:
        return masked
    masked = redact(shown)
    return masked if masked != shown else value


def _masked_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(_masked_value(a) for a in args)
    if isinstance(args, Mapping):
        return {key: _masked_value(value) for key, value in args.items()}
    return _masked_value(args)


def _scrub(record: logging.LogRecord) -> None:
    msg, args = record.msg, record.args
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not fit its format: let logging report it as usual
        return
    if redact(message) != message:
        if isinstance(msg, str):
            record.msg = redact(msg)
        elif isinstance(msg, Mapping):  # structlog's event dict, read as a dict by its formatter
            record.msg = {key: _masked_value(value) for key, value in msg.items()}
        else:
            record.msg = _masked_value(msg)
        if args:
            record.args = _masked_args(args)
        try:
            message = record.getMessage()
        except Exception:
            message = redact(message)
            record.msg, record.args = message, ()
        if redact(message) != message:  # a token split between the format and its arguments
            record.msg, record.args = redact(message), ()
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        masked = redact(text)
        if masked != text:
            # Formatters write exc_text when there is one; those that format exc_info get the stand-in.
            record.exc_text = masked
            stand_in = _masked_exception(record.exc_info[1], {})
            record.exc_info = (MaskedError, stand_in, record.exc_info[2])
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _scrub_extra(record: logging.LogRecord, extra: Mapping[str, object]) -> None:
    fields = record.__dict__
    for key in extra:
        if key in fields:
            fields[key] = _masked_value(fields[key])


# -- hooks -----------------------------------------------------------------------------------------------------

_PROBE = "xoxb-000000-probe-000000"
_MakeRecord = Callable[..., logging.LogRecord]


class _Factory:
    """Our log record factory: the factory that was in place, then the masking."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        _scrub(record)
        return record


_make_records: dict[_MakeRecord, _MakeRecord] = {}  # each wrapper of ours and what it wraps
_checked: list[object] = [None]  # the factory found to mask (ours, or one chained over ours)


def _wrap_make_record(previous: _MakeRecord) -> _MakeRecord:
    def make_record(
        self: logging.Logger,
        name: str,
        level: int,
        fn: str,
        lno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        extra: Mapping[str, object] | None = None,
        sinfo: str | None = None,
    ) -> logging.LogRecord:
        record = previous(self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)
        if logging.getLogRecordFactory() is not _checked[0]:  # the factory was reset: mask here
            _scrub(record)
        if extra:
            _scrub_extra(record, extra)
        return record

    _make_records[make_record] = previous
    return make_record


def _factory_masks() -> bool:
    try:
        record = logging.getLogRecordFactory()("probe", logging.DEBUG, "", 0, _PROBE, (), None)
    except Exception:  # a factory that cannot make the probe: chain ours over it
        return False
    return _PROBE not in str(record.msg)


def _make_record_masks() -> bool:
    try:
        record = logging.Logger.makeRecord(
            logging.Logger("probe"), "probe", logging.DEBUG, "", 0, "", (), None, None, {"probe": _PROBE}
        )
    except Exception:
        return False
    return _PROBE not in str(record.__dict__.get("probe"))


def install() -> None:
    """Mask every log record made from now on, even before any secret is registered. Idempotent, and it puts
    the masking back when something replaced the record factory or ``Logger.makeRecord`` by one that does not mask
    (a chain over ours is left as it is)."""
    with _lock:
        if not isinstance(logging.getLogRecordFactory(), _Factory) and not _factory_masks():
            logging.setLogRecordFactory(_Factory(logging.getLogRecordFactory()))
        _checked[0] = logging.getLogRecordFactory()
        if logging.Logger.makeRecord not in _make_records and not _make_record_masks():
            logging.Logger.makeRecord = _wrap_make_record(logging.Logger.makeRecord)  # type: ignore[method-assign]


def uninstall() -> bool:
    """Take our masking off where it is on top, putting back what it was chained to; what something else put
    over it is left in place. Whether anything was taken off."""
    removed = False
    with _lock:
        factory = logging.getLogRecordFactory()
        if isinstance(factory, _Factory):
            logging.setLogRecordFactory(factory.previous)
            removed = True
        make_record = logging.Logger.makeRecord
        if make_record in _make_records:
            logging.Logger.makeRecord = _make_records.pop(make_record)  # type: ignore[method-assign]
            removed = True
        _checked[0] = None
    return removed


#: The attributes every log record has: the others came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"asctime"}


class SecretFilter(logging.Filter):
    """A filter for a handler: removes the protected secrets from each record it passes, its ``extra=`` fields
    too (and passes them all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        _scrub_extra(record, {key: None for key in record.__dict__ if key not in _STANDARD})
        return True
