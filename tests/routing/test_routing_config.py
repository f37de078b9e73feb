from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import ConfigurationError
from norbit_connectors.routing import OfficeHours, Routing


def test_defaults() -> None:
    routing = Routing()
    assert (routing.mode, routing.max_concurrent, routing.response_minutes, routing.office_hours) == (
        "auto",
        5,
        3,
        None,
    )


def test_values_are_frozen_and_keyword_only() -> None:
    routing = Routing(mode="manual", max_concurrent=None, response_minutes=0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        routing.mode = "auto"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Routing("auto")  # type: ignore[call-arg]
    assert routing == Routing(mode="manual", max_concurrent=None, response_minutes=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "automatic"}, "use 'auto', 'manual' or 'off'"),
        ({"mode": None}, "not a mode"),
        ({"max_concurrent": 0}, "at least 1, or None"),
        ({"max_concurrent": -3}, "at least 1"),
        ({"max_concurrent": True}, "whole number"),
        ({"max_concurrent": "5"}, "whole number"),
        ({"max_concurrent": 2.5}, "whole number"),
        ({"response_minutes": -1}, "0 or more"),
        ({"response_minutes": 1.5}, "whole number of minutes"),
        ({"office_hours": {"mon": [("09:00", "17:00")]}}, "OfficeHours"),
    ],
)
def test_bad_values_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Routing(**kwargs)  # type: ignore[arg-type]


def test_office_hours_accepted() -> None:
    hours = OfficeHours.weekdays("09:00", "17:00", timezone="Europe/Berlin")
    assert Routing(office_hours=hours).office_hours == hours


@given(
    mode=st.one_of(st.sampled_from(["auto", "manual", "off"]), st.text(max_size=8)),
    cap=st.one_of(st.none(), st.integers(-5, 50), st.floats(allow_nan=False), st.booleans(), st.text(max_size=3)),
    minutes=st.one_of(st.integers(-5, 50), st.floats(allow_nan=False), st.text(max_size=3)),
)
def test_any_values_build_or_raise_configuration_error(mode: object, cap: object, minutes: object) -> None:
    valid = (
        mode in ("auto", "manual", "off")
        and (cap is None or (type(cap) is int and cap >= 1))
        and (type(minutes) is int and minutes >= 0)
    )
    try:
        Routing(mode=mode, max_concurrent=cap, response_minutes=minutes)  # type: ignore[arg-type]
    except ConfigurationError:
        assert not valid
    else:
        assert valid
