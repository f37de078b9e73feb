"""The notice card posted for a new conversation (Block Kit, pure).

Layout: a header, who started the conversation and where, the first message, the host's allow-listed user
fields, who joined / who it is assigned to, and an actions block (``block_id`` :data:`NOTICE_BLOCK_ID`) with a
**Join** button (:data:`JOIN_ACTION_ID`, ``value`` = the conversation id) and a URL button to the channel
(:data:`OPEN_ACTION_ID`; Slack still sends block_actions for it, which must be acked).

Customer-provided text is escaped (see :mod:`._mrkdwn`) and every text is cut to Block Kit's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from ..exceptions import UsageError
from ._mrkdwn import escape

__all__ = [
    "BUTTON_TEXT_LIMIT",
    "BUTTON_VALUE_LIMIT",
    "CONTEXT_TEXT_LIMIT",
    "FALLBACK_TEXT_LIMIT",
    "FIELDS_PER_SECTION",
    "FIELD_TEXT_LIMIT",
    "HEADER_TEXT_LIMIT",
    "JOIN_ACTION_ID",
    "NAME_LIMIT",
    "NOTICE_BLOCK_ID",
    "OPEN_ACTION_ID",
    "SECTION_TEXT_LIMIT",
    "channel_link",
    "notice_blocks",
    "notice_fallback_text",
    "truncate_escaped",
]

#: action_id of the Join button; its ``value`` is the conversation id.
JOIN_ACTION_ID = "norbit_join"
#: action_id of the URL button to the channel.
OPEN_ACTION_ID = "norbit_open"
#: block_id of the card's actions block.
NOTICE_BLOCK_ID = "norbit_notice"

HEADER_TEXT_LIMIT = 150
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
FIELDS_PER_SECTION = 10
CONTEXT_TEXT_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 300
NAME_LIMIT = 200

_ELLIPSIS = "…"
_ENTITIES = ("&amp;", "&lt;", "&gt;")


def truncate_escaped(text: str, limit: int) -> str:
    """Escaped ``text`` cut to at most ``limit`` characters with an ellipsis, never inside an entity."""
    if len(text) <= limit:
        return text
    cut = limit - len(_ELLIPSIS)
    amp = text.rfind("&", max(0, cut - 4), cut)
    if amp != -1 and any(text.startswith(e, amp) and amp + len(e) > cut for e in _ENTITIES):
        cut = amp
    return text[:cut] + _ELLIPSIS


def _plain(text: str, limit: int) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - len(_ELLIPSIS)] + _ELLIPSIS
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate_escaped(text, limit)}


def channel_link(channel_id: str, team_id: str | None) -> str:
    """``https://slack.com/app_redirect?channel=...&team=...``: opens the channel in the Slack client."""
    query = {"channel": channel_id}
    if team_id:
        query["team"] = team_id
    return "https://slack.com/app_redirect?" + urlencode(query)


def _mentions(user_ids: Sequence[str], budget: int) -> str:
    parts: list[str] = []
    used = 0
    for index, user_id in enumerate(user_ids):
        mention = f"<@{escape(user_id)}>"
        more = f" and {len(user_ids) - index} more"
        if used + len(mention) + 2 + len(more) > budget:
            parts.append(more.strip())
            break
        parts.append(mention)
        used += len(mention) + 2
    return ", ".join(parts)


def notice_blocks(
    *,
    conversation_id: str,
    user_name: str,
    user_fields: Sequence[tuple[str, str]],
    first_message: str,
    channel_id: str,
    channel_name: str,
    team_id: str | None,
    department_name: str | None,
    joined_by: Sequence[str] = (),
    assigned_to: str | None = None,
) -> list[dict[str, Any]]:
    """The Block Kit blocks of the notice card for a new conversation.

    ``user_fields`` are the ``(label, value)`` pairs the host allows on the card, shown in order and nothing
    else. ``joined_by`` and ``assigned_to`` are Slack user ids (agents, so they are mentioned).
    """
    if len(conversation_id) > BUTTON_VALUE_LIMIT or not conversation_id:
        raise UsageError(f"a conversation id must have 1 to {BUTTON_VALUE_LIMIT} characters for the Join button")
    title = "New conversation" + (f" · {department_name}" if department_name else "")
    # Names are cut on their own so that the channel mention after them always stays whole.
    name = truncate_escaped(escape(user_name), NAME_LIMIT) or "A customer"
    who = f"*{name}* started a conversation in <#{escape(channel_id)}>"
    if channel_name:
        who += f" (#{truncate_escaped(escape(channel_name), NAME_LIMIT)})"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(title, HEADER_TEXT_LIMIT)},
        {"type": "section", "text": _mrkdwn(who, SECTION_TEXT_LIMIT)},
        {"type": "section", "text": _mrkdwn(escape(first_message) or "_(no text)_", SECTION_TEXT_LIMIT)},
    ]
    fields = [_mrkdwn(f"*{escape(label)}*\n{escape(value) or '-'}", FIELD_TEXT_LIMIT) for label, value in user_fields]
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    status: list[dict[str, Any]] = []
    if joined_by:
        status.append(_mrkdwn("Joined by " + _mentions(joined_by, CONTEXT_TEXT_LIMIT - 20), CONTEXT_TEXT_LIMIT))
    if assigned_to:
        status.append(_mrkdwn(f"Assigned to <@{escape(assigned_to)}>", CONTEXT_TEXT_LIMIT))
    if status:
        blocks.append({"type": "context", "elements": status})
    blocks.append(
        {
            "type": "actions",
            "block_id": NOTICE_BLOCK_ID,
            "elements": [
                {
                    "type": "button",
                    "action_id": JOIN_ACTION_ID,
                    "text": _plain("Join", BUTTON_TEXT_LIMIT),
                    "style": "primary",
                    "value": conversation_id,
                },
                {
                    "type": "button",
                    "action_id": OPEN_ACTION_ID,
                    "text": _plain("Open channel", BUTTON_TEXT_LIMIT),
                    "url": channel_link(channel_id, team_id),
                    "value": conversation_id,
                },
            ],
        }
    )
    return blocks


def notice_fallback_text(*, user_name: str, first_message: str, department_name: str | None = None) -> str:
    """The ``text`` sent with the card: shown in notifications and by clients that cannot show blocks."""
    where = f" ({escape(department_name)})" if department_name else ""
    text = f"New conversation{where} from {escape(user_name) or 'a customer'}"
    if first_message:
        text += ": " + escape(first_message)
    return truncate_escaped(text, FALLBACK_TEXT_LIMIT)
