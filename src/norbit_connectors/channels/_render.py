"""Readable lines for the customer messages that are not plain text: a voice message, a location, a contact, a
poll... so that every inbound message reaches the agents as something they can read, never as nothing.

Pure functions over values straight from a webhook: anything of the wrong type is left out, nothing raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "coordinate",
    "duration",
    "forwarded_line",
    "join_lines",
    "label",
    "location_line",
    "person_line",
    "poll_line",
    "reply_line",
    "unsupported",
]

KIND_LIMIT = 40


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def duration(seconds: Any) -> str | None:
    """``7`` -> ``"0:07"``, ``3725`` -> ``"1:02:05"``; None for anything that is not a length of time."""
    number = _number(seconds)
    if number is None or number < 0 or number >= 1e9:
        return None
    total = round(number)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def label(kind: str, *details: Any) -> str:
    """``[kind, detail, ...]`` with the details that are non-empty text: ``[voice message, 0:07]``."""
    shown = [d for d in (_text(x) for x in details) if d]
    return "[" + ", ".join([kind, *shown]) + "]"


def coordinate(value: Any, limit: float) -> str | None:
    """A latitude (``limit`` 90) or longitude (180) as text with at most 6 decimals; None when out of range."""
    number = _number(value)
    if number is None or abs(number) > limit:
        return None
    text = f"{number:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def location_line(
    latitude: Any, longitude: Any, *, kind: str = "location", name: Any = None, address: Any = None
) -> str:
    """``[location] Name, Address 52.52, 13.405 <map link>``; the place's name alone without coordinates."""
    lat = coordinate(latitude, 90.0)
    lon = coordinate(longitude, 180.0)
    words = ", ".join(w for w in (_text(name), _text(address)) if w)
    parts = [f"[{kind}]"]
    if words:
        parts.append(words)
    if lat is not None and lon is not None:
        parts.append(f"{lat}, {lon}")
        parts.append(f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}")
    return " ".join(parts)


def person_line(name: Any, phones: Iterable[Any] = (), emails: Iterable[Any] = (), *, kind: str = "contact") -> str:
    """``[contact] Ann Smith +49 30 1234567 ann@example.com``."""
    shown = [_text(name), *(_text(p) for p in phones), *(_text(e) for e in emails)]
    return " ".join([f"[{kind}]", *(s for s in shown if s)])


def poll_line(question: Any, options: Iterable[Any], *, kind: str = "poll") -> str:
    """``[poll] Which day? Monday / Tuesday``."""
    choices = " / ".join(t for t in (_text(o) for o in options) if t)
    head = _text(question)
    if head and choices:
        return f"[{kind}] {head}: {choices}"
    return " ".join(s for s in (f"[{kind}]", head or choices) if s)


def unsupported(kind: Any = None) -> str:
    """``[unsupported message: <kind>]`` (``kind`` cut to a short, printable word), or ``[unsupported message]``."""
    word = "".join(c for c in _text(kind) if c.isprintable() and c not in "[]<>|")[:KIND_LIMIT]
    return f"[unsupported message: {word}]" if word else "[unsupported message]"


def join_lines(*parts: str | None) -> str:
    """The non-empty ``parts``, one per line."""
    return "\n".join(p for p in parts if p)


QUOTE_LIMIT = 80


def forwarded_line(origin: Any = None) -> str:
    """``[forwarded from Ann Smith]``, or ``[forwarded]`` when the origin is not known."""
    name = _text(origin)[: KIND_LIMIT * 2]
    return f"[forwarded from {name}]" if name else "[forwarded]"


def reply_line(quoted: Any = None, *, what: str = "an earlier message") -> str:
    """``[reply to: <the first words of the quoted text>]``, or ``[reply to an earlier message]``."""
    text = _text(quoted)
    if not text:
        return f"[reply to {what}]"
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 1].rstrip() + "…"
    return f"[reply to: {text}]"
