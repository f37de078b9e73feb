"""A host's attachment URL reaches Slack as one link, always shown, never as live markup (a mention, an
``<!channel>``, a second link) and never dropped."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from norbit_connectors import Attachment, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConnector, SlackLimiter
from norbit_connectors.slack._links import attachment_link, link_target
from norbit_connectors.slack._mrkdwn import unescape
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..slack.conftest import Workspace

_pieces = st.sampled_from([*"<>|&@#!%:/ \n\tahU1;", "&amp;", "&lt;", "<@U1>", "<!here>", "<#C1|x>"])
_markup_heavy = st.lists(_pieces).map("".join)
urls = st.text() | _markup_heavy | st.builds(lambda a, b: "https://example.com/" + a + b, _markup_heavy, st.text())


def _only_our_link(rendered: str) -> tuple[str, str]:
    """The target and label of the single link ``rendered`` must be."""
    assert rendered.startswith("<") and rendered.endswith(">")
    inner = rendered[1:-1]
    assert "<" not in inner and ">" not in inner  # nothing else opens or closes
    assert inner[:1] not in ("@", "#", "!")  # the target is no mention, channel or special command
    target, bar, label = inner.partition("|")
    assert bar and label
    return target, label


@given(url=urls, label=st.text())
def test_any_url_is_one_link_with_no_markup(url: str, label: str) -> None:
    rendered = attachment_link(url, label)
    for opener in ("<@", "<!", "<#"):
        assert opener not in rendered
    target, _ = _only_our_link(rendered)
    assert "\n" not in rendered and " " not in target


@given(url=urls)
def test_the_link_shows_the_url(url: str) -> None:
    # Without percent signs of its own the URL comes back exactly: Slack unescapes the entities, a browser
    # decodes the percent-encoding.
    assume("%" not in url and not any(0xD800 <= ord(c) <= 0xDFFF for c in url))
    target = link_target(url)
    assert unquote(unescape(target)) == url


@given(url=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="<>|&@#!")))
def test_ordinary_urls_are_unchanged(url: str) -> None:
    assume(url[:1] not in "@#!")
    assert link_target(url) == url


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


@pytest.mark.anyio
async def test_attachment_urls_with_markup_reach_the_channel_as_links(workspace: Workspace) -> None:
    emu = workspace.emu
    slack = SlackConnector(workspace.config(), limiter=SlackLimiter(enabled=False))
    attachments = [
        Attachment(name="invoice", url="https://example.com/a?x=<@U0BOSS>&y=<!channel>"),
        Attachment(name="menu", url="https://example.com/b|c>d"),
        Attachment(name="", url="@U0BOSS"),
    ]
    async with Hub(store=MemoryStore(), connectors=[slack]) as hub:
        conversation = Conversation(id="c1", user=User(id="u1", name="Zoë"))
        await hub.customer_message(conversation, Message(id="m1", text="see <!here>", attachments=attachments))
        await hub.wait_idle()
        channel = await slack.channel_for("c1")
        assert channel is not None
    (posted,) = [m for m in emu.messages(channel) if m.get("username") == "Zoë"]
    text = posted["text"]
    assert text == (
        "see &lt;!here&gt;\n"
        "<https://example.com/a?x=%3C@U0BOSS%3E&amp;y=%3C!channel%3E|invoice>\n"
        "<https://example.com/b%7Cc%3Ed|menu>\n"
        "<%40U0BOSS|file>"
    )
    for opener in ("<@", "<!", "<#"):
        assert opener not in text
