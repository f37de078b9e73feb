"""Weekly office hours in a time zone, correct across daylight-saving changes.

Hours are wall-clock times of the office's time zone: "09:00" means nine o'clock on the office's clocks, whatever
the UTC offset that day. On the day clocks spring forward, wall times inside the skipped hour never happen; on the
day they fall back, wall times inside the repeated hour happen twice (and the office is open both times if the
timetable says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import field, frozen

from ..exceptions import ConfigurationError, UsageError

__all__ = ["WEEKDAYS", "OfficeHours"]

#: Weekday keys in order, Monday first (the order of :meth:`datetime.weekday`).
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_MINUTES = 24 * 60

Interval = tuple[str, str]
# Per weekday (Monday first), sorted non-overlapping half-open [start, end) minute ranges.
_Table = tuple[tuple[tuple[int, int], ...], ...]


def _weekday_index(key: object) -> int:
    if isinstance(key, str):
        name = key.strip().lower()
        if name in WEEKDAYS:
            return WEEKDAYS.index(name)
        if name in _FULL_NAMES:
            return _FULL_NAMES.index(name)
    raise ConfigurationError(
        f"office hours: {key!r} is not a weekday; use one of {', '.join(WEEKDAYS)} (or the full English name)"
    )


def _parse_time(value: object, *, day: str) -> int:
    """Minutes since midnight of "HH:MM" (or a :class:`datetime.time`); "24:00" is allowed as an end."""
    if isinstance(value, time):
        if value.second or value.microsecond:
            raise ConfigurationError(f"office hours on {day}: {value!r} must be a whole minute")
        return value.hour * 60 + value.minute
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and 1 <= len(hours) <= 2:
            h, m = int(hours), int(minutes)
            if (h < 24 and m < 60) or (h == 24 and m == 0):
                return h * 60 + m
    raise ConfigurationError(f"office hours on {day}: {value!r} is not a time; write it as 'HH:MM', e.g. '09:30'")


def _format_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _intervals_of(value: object, *, day: str) -> list[tuple[object, object]]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"office hours on {day}: expected a list of (start, end) pairs such as [('09:00', '17:00')], got {value!r}"
        )
    items = list(value)
    # A single pair given without the surrounding list: ("09:00", "17:00").
    if len(items) == 2 and all(isinstance(x, (str, time)) for x in items):
        items = [tuple(items)]
    pairs: list[tuple[object, object]] = []
    for item in items:
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2:
            raise ConfigurationError(
                f"office hours on {day}: {item!r} is not a (start, end) pair such as ('09:00', '17:00')"
            )
        pairs.append((item[0], item[1]))
    return pairs


def _normalize(hours: object) -> tuple[Mapping[str, tuple[Interval, ...]], _Table]:
    if not isinstance(hours, Mapping):
        raise ConfigurationError(
            "office hours: 'hours' must map weekdays to (start, end) pairs, e.g. {'mon': [('09:00', '17:00')]}"
        )
    minutes: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
    seen: set[int] = set()
    for key, value in hours.items():
        index = _weekday_index(key)
        day = WEEKDAYS[index]
        if index in seen:
            raise ConfigurationError(f"office hours: {day} is given twice; merge its hours into one entry")
        seen.add(index)
        for raw_start, raw_end in _intervals_of(value, day=day):
            start = _parse_time(raw_start, day=day)
            end = _parse_time(raw_end, day=day)
            if start == _DAY_MINUTES:
                raise ConfigurationError(f"office hours on {day}: a range cannot start at 24:00")
            if start == end:
                raise ConfigurationError(
                    f"office hours on {day}: {_format_minutes(start)}-{_format_minutes(end)} is empty; "
                    "give an end after the start"
                )
            if end > start:
                minutes[index].append((start, end))
            else:
                # An end before the start runs past midnight into the next day.
                minutes[index].append((start, _DAY_MINUTES))
                if end:
                    minutes[(index + 1) % 7].append((0, end))
    table: list[tuple[tuple[int, int], ...]] = []
    for ranges in minutes:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        table.append(tuple(merged))
    public = {
        WEEKDAYS[i]: tuple((_format_minutes(s), _format_minutes(e)) for s, e in ranges)
        for i, ranges in enumerate(table)
        if ranges
    }
    return MappingProxyType(public), tuple(table)


def _convert_hours(value: Mapping[str, Any]) -> Mapping[str, tuple[Interval, ...]]:
    return _normalize(value)[0]


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"office hours: timezone must be an IANA name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"office hours: unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'"
        ) from exc


def _require_aware(at: object) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"expected a timezone-aware datetime (e.g. datetime.now(UTC)), got {at!r}")
    return at


@frozen(kw_only=True, eq=False)
class OfficeHours:
    """A weekly timetable in a time zone.

    ``hours`` maps weekdays ("mon" ... "sun", or full names) to (start, end) pairs of "HH:MM" wall-clock times;
    an end of "24:00" closes at midnight and an end before the start runs past midnight into the next day::

        OfficeHours(timezone="Europe/Berlin", hours={"mon": [("09:00", "12:00"), ("13:00", "17:00")],
                                                     "sat": [("10:00", "14:00")]})
        OfficeHours.weekdays("09:00", "17:00", timezone="America/New_York")

    Days not mentioned are closed. ``hours`` reads back normalised (short day names, sorted merged ranges).
    """

    timezone: str
    hours: Mapping[str, tuple[Interval, ...]] = field(factory=dict, converter=_convert_hours)
    _table: _Table = field(init=False, repr=False)
    _zone: ZoneInfo = field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        zone = _zone(self.timezone)
        _public, table = _normalize(self.hours)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_zone", zone)

    @classmethod
    def weekdays(cls, start: str, end: str, *, timezone: str) -> OfficeHours:
        """Open Monday to Friday from ``start`` to ``end``."""
        return cls(timezone=timezone, hours={day: [(start, end)] for day in WEEKDAYS[:5]})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OfficeHours):
            return NotImplemented
        return (self.timezone, self._table) == (other.timezone, other._table)

    def __hash__(self) -> int:
        return hash((self.timezone, self._table))

    def _open_at_wall(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._table[local.weekday()])

    def is_open(self, at: datetime) -> bool:
        """Whether the office is open at the instant ``at`` (a timezone-aware datetime)."""
        return self._open_at_wall(_require_aware(at).astimezone(self._zone))

    def next_open(self, at: datetime) -> datetime | None:
        """The first instant at or after ``at`` when the office is open (``at`` itself if open now).

        The result is in UTC (``.astimezone(ZoneInfo(hours.timezone))`` for local display: comparisons of
        datetimes inside a repeated hour across time zones are always unequal, so UTC is the safe form); None
        when the timetable has no hours at all.
        """
        at = _require_aware(at)
        if not any(self._table):
            return None
        if self.is_open(at):
            return at.astimezone(UTC)
        at_utc = at.astimezone(UTC)
        first_day = at_utc.astimezone(self._zone).date() - timedelta(days=1)
        # The office goes from closed to open only when the wall clock reaches a range's start (once, or twice
        # in a repeated hour) or jumps into a range at a clock change: those instants are the candidates.
        best: datetime | None = None
        for offset in range(10):
            day = first_day + timedelta(days=offset)
            candidates = [self._transition_on(day)]
            for start, _end in self._table[day.weekday()]:
                wall = datetime.combine(day, time(start // 60, start % 60))
                candidates.append(wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC))
                candidates.append(wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC))
            for candidate in candidates:
                if candidate is None or candidate < at_utc or (best is not None and candidate >= best):
                    continue
                if self._open_at_wall(candidate.astimezone(self._zone)):
                    best = candidate
        return best

    def _transition_on(self, day: date) -> datetime | None:
        """The instant (UTC) the zone's offset changes during local ``day``, if it does."""
        lo = datetime.combine(day, time()).replace(tzinfo=self._zone).astimezone(UTC)
        hi = lo + timedelta(days=1, hours=3)
        if lo.astimezone(self._zone).utcoffset() == hi.astimezone(self._zone).utcoffset():
            return None
        before = lo.astimezone(self._zone).utcoffset()
        # Offsets change on whole seconds: bisect to the first second with the new offset.
        low, high = 0, int((hi - lo).total_seconds())
        while high - low > 1:
            mid = (low + high) // 2
            if (lo + timedelta(seconds=mid)).astimezone(self._zone).utcoffset() == before:
                low = mid
            else:
                high = mid
        return lo + timedelta(seconds=high)
