"""Rate cells (see :class:`norbit_connectors.store.RateCells`): the arithmetic every store shares."""

from __future__ import annotations

import math

from ..exceptions import UsageError

__all__ = ["MAX_RATE_KEY", "advance", "check_reservation", "check_time"]

#: Longest key a rate cell accepts (characters).
MAX_RATE_KEY = 512


def check_reservation(key: str, now: float, cost: float, not_before: float) -> None:
    """UsageError unless ``key`` is a non-empty string of at most MAX_RATE_KEY characters, ``now`` and
    ``not_before`` are finite and ``cost`` is finite and not negative."""
    if not isinstance(key, str) or not key or len(key) > MAX_RATE_KEY:
        raise UsageError(f"a rate cell key is a string of 1 to {MAX_RATE_KEY} characters")
    for name, value in (("now", now), ("cost", cost), ("not_before", not_before)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise UsageError(f"a rate cell reservation needs a finite {name}, not {value!r}")
    if cost < 0:
        raise UsageError(f"a rate cell reservation cannot cost less than nothing ({cost!r})")


def check_time(name: str, value: float) -> None:
    """UsageError unless ``value`` (a job's ``not_before``, say) is a finite number: a time that never comes
    would hold a queue for ever."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite time, not {value!r}")


def advance(cell: float | None, *, now: float, cost: float, not_before: float = 0.0) -> tuple[float, float]:
    """A reservation on ``cell`` (None: never reserved): its start and the cell's new time."""
    start = max(now, not_before) if cell is None else max(cell, now, not_before)
    return start, start + cost
