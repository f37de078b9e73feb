"""Links to the host's attachment URLs in Slack ``mrkdwn`` (pure).

Slack reads ``<target|label>``: a target starting with ``@``, ``#`` or ``!`` is a mention, a ``|`` ends the
target, a ``>`` ends the link and a ``<`` opens another. A URL from the host is made into a target that is always
a link and nothing else: ``<``, ``>``, ``|``, whitespace and control characters are percent-encoded, a leading
``@`` / ``#`` / ``!`` too, and ``&`` becomes ``&amp;`` (Slack unescapes entities in a link's target).
"""

from __future__ import annotations

from ._mrkdwn import escape

__all__ = ["attachment_link", "link_target"]

_ALWAYS = frozenset("<>|")
_LEADING = frozenset("@#!")


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _encode(char: str, first: bool) -> str:
    if char in _ALWAYS or char.isspace() or not char.isprintable() or (first and char in _LEADING):
        return _percent(char)
    if char == "&":
        return "&amp;"
    return char


def link_target(url: str) -> str:
    """``url`` as the target of a Slack link: it shows the same address and cannot end, split or become
    markup (a mention, ``<!channel>``, another link)."""
    return "".join(_encode(char, index == 0) for index, char in enumerate(url))


def attachment_link(url: str, label: str) -> str:
    """A Slack link to ``url`` showing ``label`` (escaped, on one line; "file" when empty)."""
    shown = " ".join(escape(label).split()) or "file"
    return f"<{link_target(url)}|{shown}>"
