from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.slack._emoji import EMOJI, SKIN_TONE_BASES, emoji_for
from norbit_connectors.slack._mrkdwn import (
    escape,
    mentioned_channel_ids,
    mentioned_user_ids,
    to_plain_text,
    unescape,
)

NAMES = {"U1": "Ann Lee", "U2": "Bo"}


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123> hi", "&lt;@U123&gt; hi"),
        ("a & b", "a &amp; b"),
        ("&amp;", "&amp;amp;"),
        ("*bold* _it_ :smile:", "*bold* _it_ :smile:"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("hi <@U1>", "hi @Ann Lee"),
        ("hi <@U1|ann>", "hi @Ann Lee"),
        ("hi <@U9|nine>", "hi @nine"),
        ("hi <@U9>", "hi @U9"),
        ("see <#C1|general>", "see #general"),
        ("see <#C1>", "see #C1"),
        ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
        ("<!here|@here> now", "@here now"),
        ("ping <!subteam^S1|@support>", "ping @support"),
        ("on <!date^1392734382^{date_num}|Feb 18, 2014>", "on Feb 18, 2014"),
        ("<https://x.io/a?b=1&amp;c=2|the docs>", "the docs (https://x.io/a?b=1&c=2)"),
        ("<https://x.io>", "https://x.io"),
        ("<https://x.io|https://x.io>", "https://x.io"),
        ("<http://example.com|example.com>", "example.com"),
        ("<mailto:bob@x.io|bob@x.io>", "bob@x.io"),
        ("<mailto:bob@x.io|Bob>", "Bob (bob@x.io)"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
        ("&amp;lt;", "&lt;"),
        (":smile: :+1::skin-tone-3: :no_such_emoji:", "\U0001f604 \U0001f44d\U0001f3fc :no_such_emoji:"),
        (":heart::skin-tone-2:", "\u2764\ufe0f"),
        ("12:30:45", "12:30:45"),
        ("re:ok:smile:", "re:ok\U0001f604"),
        (":wave::skin-tone-9:", "\U0001f44b:skin-tone-9:"),
        ("", ""),
    ],
)
def test_to_plain_text(slack: str, plain: str) -> None:
    assert to_plain_text(slack, user_names=NAMES, channel_names={}) == plain


def test_channel_names_are_looked_up() -> None:
    assert to_plain_text("<#C1|old>", channel_names={"C1": "support"}) == "#support"


def test_mentioned_ids() -> None:
    text = "<@U1> <@U2|bo> <@U1> <#C1|x> <#C2>"
    assert mentioned_user_ids(text) == ["U1", "U2"]
    assert mentioned_channel_ids(text) == ["C1", "C2"]
    assert mentioned_user_ids(escape("<@U1>")) == []


def test_emoji_table_has_the_common_names() -> None:
    assert len(EMOJI) >= 150
    assert set(EMOJI) >= SKIN_TONE_BASES
    assert emoji_for("wave", "skin-tone-6") == "\U0001f44b\U0001f3ff"
    assert emoji_for("rocket", "skin-tone-6") == "\U0001f680"
    assert emoji_for("nope") is None


@given(st.text())
def test_escape_output_is_inert(s: str) -> None:
    out = escape(s)
    assert "<" not in out
    assert ">" not in out
    assert mentioned_user_ids(out) == []
    assert unescape(out) == s


@given(st.text())
def test_escape_round_trips_without_emoji(s: str) -> None:
    assert to_plain_text(escape(s), user_names=NAMES, emoji=False) == s


@given(st.text().filter(lambda s: ":" not in s))
def test_escape_round_trips_without_colons(s: str) -> None:
    assert to_plain_text(escape(s), user_names=NAMES) == s


@given(st.text(), st.dictionaries(st.text(), st.text()))
def test_to_plain_text_never_raises(s: str, names: dict[str, str]) -> None:
    assert isinstance(to_plain_text(s, user_names=names, channel_names=names), str)


@given(st.text(alphabet="<>|@#!^&;:amplgtU1C2 hx.", max_size=60))
def test_to_plain_text_never_raises_on_markup_soup(s: str) -> None:
    assert isinstance(to_plain_text(s, user_names=NAMES), str)
    assert to_plain_text(s + "<@U1>", user_names=NAMES).endswith("@Ann Lee")
