from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import UsageError
from norbit_connectors.slack._naming import (
    CHANNEL_NAME_PATTERN,
    MAX_CHANNEL_NAME_LENGTH,
    channel_name,
    channel_name_candidates,
    fold_name,
    next_suffix,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Zoë Smith", "zoe-smith"),
        ("Ørsted", "orsted"),
        ("Ærøskøbing", "aeroskobing"),
        ("Straße", "strasse"),
        ("Łukasz Đorđević", "lukasz-dordevic"),
        ("Þór", "thor"),
        ("Œuvre", "oeuvre"),
        ("İstanbul", "istanbul"),
        ("\uff21\uff22\uff23\u3000\uff11\uff12\uff13", "abc-123"),  # full-width
        ("  --John   O'Brien!!--  ", "john-o-brien"),
        ("snake_case_name", "snake_case_name"),
        ("__x__", "x"),
    ],
)
def test_examples(name: str, expected: str) -> None:
    assert channel_name(name, fallback_id="U1") == expected


@pytest.mark.parametrize("name", ["", "   ", "李小龙", "!!!", "---", "🙂🙂", "___"])
def test_empty_after_folding_uses_the_id(name: str) -> None:
    assert channel_name(name, fallback_id="Visitor_42") == "user-visitor_42"


def test_empty_name_and_empty_id() -> None:
    assert channel_name("?", fallback_id="") == "user"
    assert channel_name("?", fallback_id="漢字") == "user"


def test_suffix_fits_within_the_limit() -> None:
    long = "a" * 200
    assert channel_name(long, fallback_id="U1") == "a" * 80
    named = channel_name(long, fallback_id="U1", suffix=12)
    assert named == "a" * 77 + "-12"
    assert len(named) == MAX_CHANNEL_NAME_LENGTH


def test_truncation_does_not_leave_a_dash_before_the_suffix() -> None:
    name = "a" * 77 + " bcd"
    assert channel_name(name, fallback_id="U1", suffix=2) == "a" * 77 + "-2"


def test_prefix() -> None:
    assert channel_name("Zoë", fallback_id="U1", prefix="Support") == "support-zoe"
    assert channel_name("", fallback_id="U1", prefix="support-") == "support-user-u1"


@pytest.mark.parametrize("bad", [0, 1, -3, True])
def test_bad_suffix_is_refused(bad: int) -> None:
    with pytest.raises(UsageError):
        channel_name("x", fallback_id="U1", suffix=bad)


def test_next_suffix_and_candidates() -> None:
    assert next_suffix(None) == 2
    assert next_suffix(2) == 3
    assert list(channel_name_candidates("Bob", fallback_id="U1", attempts=4)) == [
        "bob",
        "bob-2",
        "bob-3",
        "bob-4",
    ]


@given(
    name=st.text(),
    fallback_id=st.text(),
    prefix=st.text(max_size=30),
    suffix=st.none() | st.integers(min_value=2, max_value=10**6),
)
def test_every_input_yields_a_valid_name(name: str, fallback_id: str, prefix: str, suffix: int | None) -> None:
    result = channel_name(name, fallback_id=fallback_id, suffix=suffix, prefix=prefix)
    assert CHANNEL_NAME_PATTERN.match(result), result
    assert len(result) <= MAX_CHANNEL_NAME_LENGTH
    if suffix is not None:
        assert result.endswith(f"-{suffix}")
        assert result[: -len(f"-{suffix}")] == channel_name(name, fallback_id=fallback_id, prefix=prefix)[
            : len(result) - len(f"-{suffix}")
        ].rstrip("-_")


@given(st.text())
def test_folding_is_idempotent(text: str) -> None:
    once = fold_name(text)
    assert fold_name(once) == once


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=80))
def test_valid_names_are_kept(name: str) -> None:
    assert channel_name(name, fallback_id="U1") == name


@given(st.text(), st.text())
def test_candidates_are_distinct(name: str, fallback_id: str) -> None:
    names = list(channel_name_candidates(name, fallback_id=fallback_id, attempts=12))
    assert len(set(names)) == len(names)
