"""A 429's Retry-After, read the same way by the transport and the limiter (pure).

Whatever the header says, the wait is finite, not negative and at most :data:`MAX_HOLD`: a header of ``inf`` or
``1e12`` would otherwise put a job (and its channel's queue) off for ever. A header that cannot be read as a
number of seconds (``abc``, ``nan``, an HTTP date, nothing at all) waits :data:`DEFAULT_RETRY_AFTER`.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_RETRY_AFTER", "MAX_HOLD", "clamp_retry_after", "parse_retry_after"]

#: The longest Retry-After a 429 can hold a limit (and a job) back for, in seconds: a larger one counts as this.
MAX_HOLD = 3600.0
#: Seconds waited after a 429 whose Retry-After is missing or cannot be read.
DEFAULT_RETRY_AFTER = 1.0
# Longer than any number of seconds Slack would send; longer text is not parsed.
_MAX_TEXT = 64


def clamp_retry_after(seconds: float) -> float:
    """``seconds`` within ``[0, MAX_HOLD]``; not a number: the default."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or math.isnan(seconds):
        return DEFAULT_RETRY_AFTER
    return min(max(float(seconds), 0.0), MAX_HOLD)


def parse_retry_after(raw: object) -> float:
    """The seconds a Retry-After header's value (text, bytes, a number, a list of values: the first) asks for."""
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return DEFAULT_RETRY_AFTER
    if isinstance(raw, str):
        text = raw.strip()
        if len(text) > _MAX_TEXT:
            # Only digits make a long number worth reading: it is beyond the hold anyway.
            return MAX_HOLD if text.isdigit() else DEFAULT_RETRY_AFTER
        try:
            return clamp_retry_after(float(text))
        except ValueError:
            return DEFAULT_RETRY_AFTER
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return clamp_retry_after(float(raw) if isinstance(raw, float) else min(raw, 2**53))
    return DEFAULT_RETRY_AFTER
