from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.exceptions import UsageError
from norbit_connectors.slack._mrkdwn import escape
from norbit_connectors.slack._text import DEFAULT_LIMIT, MIN_LIMIT, split_text

ENTITIES = ("&amp;", "&lt;", "&gt;")


def test_short_text_is_one_chunk() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("") == []
    assert split_text("x" * DEFAULT_LIMIT) == ["x" * DEFAULT_LIMIT]


def test_prefers_paragraphs_then_lines_then_words() -> None:
    text = "a" * 60 + "\n\n" + "b" * 30 + "\n" + "c" * 20
    assert split_text(text, limit=100) == ["a" * 60 + "\n\n", "b" * 30 + "\n" + "c" * 20]
    text = "a" * 60 + "\n" + "b" * 30 + " " + "c" * 20
    assert split_text(text, limit=100) == ["a" * 60 + "\n", "b" * 30 + " " + "c" * 20]
    assert split_text("word " * 5, limit=12) == ["word word ", "word word ", "word "]


def test_hard_cut_without_boundaries() -> None:
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_never_splits_an_entity() -> None:
    text = escape("abcdefg&hij")  # "abcdefg&amp;hij"
    assert split_text(text, limit=10) == ["abcdefg", "&amp;hij"]


def test_keeps_mentions_whole() -> None:
    assert split_text("abcdef<@U123>xyz", limit=10) == ["abcdef", "<@U123>xyz"]


@pytest.mark.parametrize("bad", [0, 4, -1, True])
def test_bad_limit(bad: int) -> None:
    with pytest.raises(UsageError):
        split_text("abc", limit=bad)


def _cuts(chunks: list[str]) -> list[int]:
    positions, total = [], 0
    for chunk in chunks[:-1]:
        total += len(chunk)
        positions.append(total)
    return positions


@given(st.text(), st.integers(min_value=MIN_LIMIT, max_value=200))
def test_chunks_preserve_content_and_fit(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert "".join(chunks) == text
    assert all(0 < len(chunk) <= limit for chunk in chunks)


@given(st.text(alphabet="ab &<>\n", max_size=400), st.integers(min_value=MIN_LIMIT, max_value=60))
def test_escaped_text_is_never_cut_inside_an_entity(raw: str, limit: int) -> None:
    text = escape(raw)
    chunks = split_text(text, limit)
    assert "".join(chunks) == text
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    for cut in _cuts(chunks):
        for entity in ENTITIES:
            for offset in range(1, len(entity)):
                assert not text.startswith(entity, cut - offset), (text, cut)


@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=30), min_size=1, max_size=30))
def test_word_boundaries_are_used(words: list[str]) -> None:
    text = " ".join(words)
    for chunk in split_text(text, 64)[:-1]:
        # every word fits, so no chunk but the last ends inside a word
        assert chunk.endswith(" ")
