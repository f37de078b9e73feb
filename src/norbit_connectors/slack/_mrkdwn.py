"""Slack ``mrkdwn`` in both directions (pure).

Outbound, :func:`escape` makes customer text inert: Slack only parses ``<...>`` sequences for mentions and
links, so once ``&``, ``<`` and ``>`` are entities, ``<!channel>`` or ``<@U1>`` typed by a customer pings
nobody.

Inbound, :func:`to_plain_text` turns what an agent wrote in Slack into text for the customer: mentions become
``@Name``, links ``label (url)``, entities are unescaped and common ``:emoji:`` become Unicode.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from ._emoji import emoji_for

__all__ = ["escape", "mentioned_channel_ids", "mentioned_user_ids", "to_plain_text", "unescape"]

_EMPTY: Mapping[str, str] = MappingProxyType({})

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ENTITY = re.compile(r"&(amp|lt|gt);")
_ENTITY_CHARS = {"amp": "&", "lt": "<", "gt": ">"}
_TOKEN = re.compile(r"<([^<>]*)>")
_EMOJI = re.compile(r":([a-z0-9_+'-]+):(?::(skin-tone-[2-6]):)?")
_USER_MENTION = re.compile(r"<@([^<>|]+)(?:\|[^<>]*)?>")
_CHANNEL_MENTION = re.compile(r"<#([^<>|]+)(?:\|[^<>]*)?>")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def escape(text: str) -> str:
    """``text`` with ``&``, ``<`` and ``>`` replaced by the entities Slack expects; nothing else changes."""
    return text.translate(_ESCAPES)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`, in one pass (``&amp;lt;`` -> ``&lt;``)."""
    return _ENTITY.sub(lambda m: _ENTITY_CHARS[m.group(1)], text)


def mentioned_user_ids(text: str) -> list[str]:
    """The user ids mentioned (``<@U1>``, ``<@U1|name>``) in ``text``: first-occurrence order, no repeats."""
    return list(dict.fromkeys(m.group(1) for m in _USER_MENTION.finditer(text)))


def mentioned_channel_ids(text: str) -> list[str]:
    """The channel ids mentioned (``<#C1>``, ``<#C1|general>``), first occurrence order, no repeats."""
    return list(dict.fromkeys(m.group(1) for m in _CHANNEL_MENTION.finditer(text)))


def _replace_emoji(text: str) -> str:
    # Try every colon: an unknown ":word:" must not swallow the colon that opens a known one after it.
    out: list[str] = []
    pos = 0
    colon = text.find(":")
    while colon != -1:
        match = _EMOJI.match(text, colon)
        found = emoji_for(match.group(1), match.group(2)) if match else None
        if match and found is not None:
            out.append(text[pos:colon])
            out.append(found)
            pos = match.end()
            colon = text.find(":", pos)
        else:
            colon = text.find(":", colon + 1)
    out.append(text[pos:])
    return "".join(out)


def _plain_segment(text: str, emoji: bool) -> str:
    if emoji and ":" in text:
        text = _replace_emoji(text)
    return unescape(text)


def _split_label(inner: str) -> tuple[str, str | None]:
    target, bar, label = inner.partition("|")
    return target, (label if bar else None)


def _strip_scheme(url: str) -> str:
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
            break
    return url.rstrip("/")


def _convert_token(inner: str, user_names: Mapping[str, str], channel_names: Mapping[str, str]) -> str:
    target, label = _split_label(inner)
    if target.startswith("@"):
        user_id = target[1:]
        name = user_names.get(user_id) or (unescape(label).lstrip("@") if label else None) or user_id
        return "@" + name
    if target.startswith("#"):
        channel_id = target[1:]
        name = channel_names.get(channel_id) or (unescape(label).lstrip("#") if label else None) or channel_id
        return "#" + name
    if target.startswith("!"):
        command, _, _ = target[1:].partition("^")
        if label:
            # <!subteam^S1|@team>, <!date^...|fallback>, <!here|@here>
            return unescape(label)
        if command in _SPECIAL:
            return _SPECIAL[command]
        if command == "date":
            return ""
        return "@" + unescape(command) if command else ""
    url = unescape(target)
    text_label = unescape(label) if label else ""
    if url.lower().startswith("mailto:"):
        address = url[len("mailto:") :]
        if not text_label or text_label == address:
            return address
        return f"{text_label} ({address})"
    if text_label and text_label != url and text_label == _strip_scheme(url):
        return text_label  # a bare domain Slack linked by itself: keep what was typed
    if not text_label or text_label == url:
        return url or text_label
    return f"{text_label} ({url})"


def to_plain_text(
    text: str,
    *,
    user_names: Mapping[str, str] = _EMPTY,
    channel_names: Mapping[str, str] = _EMPTY,
    emoji: bool = True,
) -> str:
    """Slack ``text`` as plain text for a customer.

    ``<@U1>`` / ``<@U1|name>`` -> ``@Name`` (``user_names`` first, then the label, then the id; resolve
    the ids from :func:`mentioned_user_ids` beforehand); ``<#C1|general>`` -> ``#general``; ``<!here>`` ->
    ``@here``;
    ``<!subteam^S1|@team>`` -> ``@team``; ``<!date^...|fallback>`` -> ``fallback``; ``<url|label>`` ->
    ``label (url)`` (``url`` alone when there is no distinct label; ``mailto:`` links give the address);
    ``:emoji:`` short names -> Unicode when ``emoji`` (unknown ones stay as typed); entities unescaped last.
    """
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        out.append(_plain_segment(text[pos : match.start()], emoji))
        out.append(_convert_token(match.group(1), user_names, channel_names))
        pos = match.end()
    out.append(_plain_segment(text[pos:], emoji))
    return "".join(out)
