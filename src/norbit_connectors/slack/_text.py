"""Splitting long message text for chat.postMessage (pure).

Slack truncates ``text`` beyond 40,000 characters and recommends under 4,000 per message. Split the text
after escaping it (:func:`~norbit_connectors.slack._mrkdwn.escape`): chunks never end inside an entity such
as ``&amp;`` or inside a ``<...>`` mention or link.
"""

from __future__ import annotations

from ..exceptions import UsageError

__all__ = ["DEFAULT_LIMIT", "MIN_LIMIT", "split_text"]

#: Characters per message: below Slack's recommended 4,000, with room to spare.
DEFAULT_LIMIT = 3900

#: The smallest limit that can hold any entity (``&amp;``).
MIN_LIMIT = 5

_ENTITIES = ("&amp;", "&lt;", "&gt;")
_BOUNDARIES = ("\n\n", "\n", " ")


def _safe_cut(text: str, cut: int, limit: int) -> int:
    """Move ``cut`` back so that it splits neither an entity nor a short ``<...>`` sequence."""
    amp = text.rfind("&", max(0, cut - 4), cut)
    if amp != -1:
        for entity in _ENTITIES:
            if text.startswith(entity, amp) and amp + len(entity) > cut:
                if amp > 0:
                    cut = amp
                break
    opening = text.rfind("<", 0, cut)
    if opening > 0 and text.rfind(">", opening, cut) == -1:
        closing = text.find(">", cut)
        if closing != -1 and closing - opening < limit:
            cut = opening
    return cut


def _cut_point(text: str, limit: int) -> int:
    window = text[:limit]
    for boundary in _BOUNDARIES:
        index = window.rfind(boundary)
        # A boundary in the first half would leave a chunk too short to be worth it.
        if index >= limit // 2:
            return _safe_cut(text, index + len(boundary), limit)
    return _safe_cut(text, limit, limit)


def split_text(text: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """``text`` in chunks of at most ``limit`` characters, cut at a paragraph, line or word end if possible.

    Concatenating the chunks gives ``text`` back; every chunk is non-empty; an empty text gives ``[]``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < MIN_LIMIT:
        raise UsageError(f"split_text limit must be an integer >= {MIN_LIMIT}, not {limit!r}")
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut_point(rest, limit)
        chunks.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        chunks.append(rest)
    return chunks
