from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from norbit_connectors import ConfigurationError, UsageError
from norbit_connectors.routing import WEEKDAYS, OfficeHours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# -- construction ---------------------------------------------------------------------------------------------


def test_hours_read_back_normalised() -> None:
    hours = OfficeHours(
        timezone="Europe/Berlin",
        hours={"Monday": [("13:00", "17:00"), ("09:00", "12:00"), ("11:30", "12:30")], "SAT": ("10:00", "14:00")},
    )
    assert dict(hours.hours) == {"mon": (("09:00", "12:30"), ("13:00", "17:00")), "sat": (("10:00", "14:00"),)}
    assert hours == OfficeHours(
        timezone="Europe/Berlin",
        hours={"mon": [("09:00", "12:30"), ("13:00", "17:00")], "sat": [(time(10), time(14))]},
    )
    assert len({hours, OfficeHours(timezone="Europe/Berlin", hours=dict(hours.hours))}) == 1


def test_range_past_midnight_runs_into_the_next_day() -> None:
    hours = OfficeHours(timezone="UTC", hours={"sun": [("22:00", "02:00")], "fri": [("20:00", "24:00")]})
    assert dict(hours.hours) == {
        "fri": (("20:00", "24:00"),),
        "sun": (("22:00", "24:00"),),
        "mon": (("00:00", "02:00"),),
    }
    assert hours.is_open(utc(2026, 3, 2, 1, 59))  # Monday 01:59
    assert not hours.is_open(utc(2026, 3, 2, 2, 0))
    assert hours.is_open(utc(2026, 3, 6, 23, 59))  # Friday 23:59
    assert not hours.is_open(utc(2026, 3, 7, 0, 0))


def test_weekdays_convenience() -> None:
    hours = OfficeHours.weekdays("09:00", "17:00", timezone="America/New_York")
    assert sorted(hours.hours, key=WEEKDAYS.index) == ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus", "hours": {}}, "unknown timezone"),
        ({"timezone": "", "hours": {}}, "IANA name"),
        ({"timezone": "../etc/passwd", "hours": {}}, "timezone"),
        ({"timezone": "UTC", "hours": {"someday": [("09:00", "17:00")]}}, "not a weekday"),
        ({"timezone": "UTC", "hours": {"mon": [("9am", "17:00")]}}, "'HH:MM'"),
        ({"timezone": "UTC", "hours": {"mon": [("25:00", "26:00")]}}, "'HH:MM'"),
        ({"timezone": "UTC", "hours": {"mon": [("09:60", "17:00")]}}, "'HH:MM'"),
        ({"timezone": "UTC", "hours": {"mon": [("09:00", "09:00")]}}, "is empty"),
        ({"timezone": "UTC", "hours": {"mon": [("24:00", "09:00")]}}, "cannot start at 24:00"),
        ({"timezone": "UTC", "hours": {"mon": [("09:00",)]}}, "pair"),
        ({"timezone": "UTC", "hours": {"mon": "09:00-17:00"}}, "list of"),
        ({"timezone": "UTC", "hours": {"mon": [("09:00", "12:00")], "Monday": [("13:00", "14:00")]}}, "twice"),
        ({"timezone": "UTC", "hours": [("09:00", "17:00")]}, "must map weekdays"),
        ({"timezone": "UTC", "hours": {"mon": [(time(9, 0, 30), "17:00")]}}, "whole minute"),
    ],
)
def test_bad_office_hours_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OfficeHours(**kwargs)  # type: ignore[arg-type]


@given(
    value=st.one_of(
        st.text(max_size=8),
        st.integers(),
        st.none(),
        st.lists(st.text(max_size=6), max_size=3),
        st.tuples(st.text(max_size=6), st.text(max_size=6)),
    )
)
def test_any_input_is_accepted_or_a_configuration_error(value: object) -> None:
    candidates: list[object] = [{"mon": [(value, "23:00")]}, {"mon": value}]
    if not isinstance(value, list):
        candidates.append({value: [("09:00", "10:00")]})
    for hours in candidates:
        try:
            result = OfficeHours(timezone="UTC", hours=hours)  # type: ignore[arg-type]
        except ConfigurationError:
            continue
        assert isinstance(result.is_open(utc(2026, 3, 2, 9, 30)), bool)


def test_naive_datetimes_are_refused() -> None:
    hours = OfficeHours.weekdays("09:00", "17:00", timezone="UTC")
    with pytest.raises(UsageError, match="timezone-aware"):
        hours.is_open(datetime(2026, 3, 2, 9, 0))
    with pytest.raises(UsageError, match="timezone-aware"):
        hours.next_open(datetime(2026, 3, 2, 9, 0))


# -- daylight saving ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        # 09:00 local on the Friday before and the Monday after clocks spring forward.
        ("Europe/Berlin", utc(2026, 3, 27, 8, 0), utc(2026, 3, 30, 7, 0)),
        ("America/New_York", utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 0)),
        # ... and fall back.
        ("Europe/Berlin", utc(2026, 10, 23, 7, 0), utc(2026, 10, 26, 8, 0)),
        ("America/New_York", utc(2026, 10, 30, 13, 0), utc(2026, 11, 2, 14, 0)),
    ],
)
def test_opening_follows_the_wall_clock_across_a_change(zone: str, before: datetime, after: datetime) -> None:
    hours = OfficeHours.weekdays("09:00", "17:00", timezone=zone)
    for opening in (before, after):
        assert hours.is_open(opening)
        assert not hours.is_open(opening - timedelta(seconds=1))
        assert hours.next_open(opening - timedelta(hours=3)) == opening
    assert hours.next_open(before + timedelta(hours=9)) == after


@pytest.mark.parametrize(
    ("zone", "day", "transition"),
    [("Europe/Berlin", "sun", utc(2026, 3, 29, 1, 0)), ("America/New_York", "sun", utc(2026, 3, 8, 7, 0))],
)
def test_range_starting_in_the_skipped_hour_opens_when_clocks_jump(zone: str, day: str, transition: datetime) -> None:
    hours = OfficeHours(timezone=zone, hours={day: [("02:30", "05:00")]})
    # 02:30 never happens that night: the office opens the moment the clocks jump to 03:00.
    assert hours.next_open(transition - timedelta(hours=5)) == transition
    assert not hours.is_open(transition - timedelta(seconds=1))
    assert hours.is_open(transition)
    assert hours.next_open(transition - timedelta(hours=5)).astimezone(ZoneInfo(zone)).hour == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("zone", "first_one_am"),
    [("Europe/Berlin", utc(2026, 10, 24, 23, 0)), ("America/New_York", utc(2026, 11, 1, 5, 0))],
)
def test_repeated_hour_is_open_twice(zone: str, first_one_am: datetime) -> None:
    tz = ZoneInfo(zone)
    # Open 01:00-02:30 on the night the clocks fall back: the wall clock passes 02:00-02:30 twice in Berlin
    # (02:00-03:00 repeats) and 01:00-02:00 twice in New York.
    hours = OfficeHours(timezone=zone, hours={"sun": [("01:00", "02:30")]})
    assert hours.next_open(first_one_am - timedelta(hours=2)) == first_one_am
    instants = [first_one_am + timedelta(minutes=m) for m in range(0, 5 * 60)]
    open_wall = {(i.astimezone(tz).strftime("%H:%M"), i.astimezone(tz).fold) for i in instants if hours.is_open(i)}
    if zone == "Europe/Berlin":
        # Closed between the first 02:30 and the second 02:00, then open again until the second 02:30.
        reopening = utc(2026, 10, 25, 1, 0)
        assert not hours.is_open(reopening - timedelta(minutes=1))
        assert hours.is_open(reopening)
        assert hours.next_open(utc(2026, 10, 25, 0, 40)) == reopening
        assert ("02:15", 1) in open_wall
    else:
        assert ("01:30", 1) in open_wall
    total_open = sum(1 for i in instants if hours.is_open(i))
    # 90 minutes of timetable, plus the part of it the clocks pass twice.
    assert total_open == (90 + 30 if zone == "Europe/Berlin" else 90 + 60)


# -- properties -----------------------------------------------------------------------------------------------

zones = st.sampled_from(["Europe/Berlin", "America/New_York", "UTC", "Australia/Sydney", "Asia/Kolkata"])
quarter = st.integers(0, 96).map(lambda q: f"{q * 15 // 60:02d}:{q * 15 % 60:02d}")
ranges = st.lists(st.tuples(quarter, quarter).filter(lambda r: r[0] != r[1] and r[0] != "24:00"), max_size=3)
timetables = st.dictionaries(st.sampled_from(WEEKDAYS), ranges, max_size=7)
# Instants around the 2026 changes of the zones above, and anywhere else in the year.
instants = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(
        [
            utc(2026, 3, 29, 1, 0),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 3, 8, 7, 0),
            utc(2026, 11, 1, 6, 0),
            utc(2026, 4, 4, 16, 0),
            utc(2026, 10, 3, 16, 0),
        ]
    ).flatmap(lambda t: st.integers(-36 * 60, 36 * 60).map(lambda m: t + timedelta(minutes=m, seconds=m % 7))),
)


def brute_next_open(hours: OfficeHours, at: datetime) -> datetime | None:
    if hours.is_open(at):
        return at
    # Every boundary of these zones and timetables falls on a whole minute.
    step = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(9 * 24 * 60):
        if hours.is_open(step):
            return step
        step += timedelta(minutes=1)
    return None


@settings(max_examples=60)
@given(zone=zones, table=timetables, at=instants)
def test_next_open_is_the_first_open_minute(zone: str, table: dict[str, list[tuple[str, str]]], at: datetime) -> None:
    hours = OfficeHours(timezone=zone, hours=table)
    found = hours.next_open(at)
    assert found == brute_next_open(hours, at)
    if found is not None:
        assert found.tzinfo is not None
        assert found >= at
        assert hours.is_open(found)


@given(zone=zones, table=timetables, at=instants)
def test_is_open_matches_the_local_wall_clock(zone: str, table: dict[str, list[tuple[str, str]]], at: datetime) -> None:
    hours = OfficeHours(timezone=zone, hours=table)
    local = at.astimezone(ZoneInfo(zone))
    minute = local.strftime("%H:%M")
    day = WEEKDAYS[local.weekday()]
    expected = any(start <= minute < end for start, end in hours.hours.get(day, ()))
    assert hours.is_open(at) == expected
    # The answer depends on the instant only, not on the zone the caller expressed it in.
    assert hours.is_open(at.astimezone(NEW_YORK)) == hours.is_open(at.astimezone(BERLIN)) == expected
