"""Who may do what from Slack (pure decisions; the connector looks the facts up).

- :func:`foreign`: a request of another workspace, organisation or app is refused. Slack signs every request
  with the app's signing secret, so a valid signature says "this app", not "this workspace": an app installed in
  a second workspace receives that workspace's events too.
- :func:`may_act`: with ``agent_links`` set, only linked agents and the conversation's assigned agent may
  archive it or run the connector's commands; without links, every member of the channel may (as before).
- :func:`card_matches`: a Join click counts only for the conversation of the card that was clicked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

__all__ = ["Ours", "card_matches", "foreign", "may_act"]


@frozen(kw_only=True)
class Ours:
    """The workspace (or organisation, for an org-wide install) and app the connector serves, as auth.test
    reported them; None where it did not say."""

    team_id: str | None = None
    enterprise_id: str | None = None
    app_id: str | None = None
    enterprise_install: bool = False

    @classmethod
    def from_auth_test(cls, who: Mapping[str, Any]) -> Ours:
        """What auth.test's answer ``who`` says about the bot token's workspace and app."""

        def text(key: str) -> str | None:
            value = who.get(key)
            return value if isinstance(value, str) and value else None

        return cls(
            team_id=text("team_id"),
            enterprise_id=text("enterprise_id"),
            app_id=text("app_id"),
            enterprise_install=who.get("is_enterprise_install") is True,
        )


def foreign(ours: Ours, *, team_id: str | None, enterprise_id: str | None, app_id: str | None) -> str | None:
    """Why a request naming ``team_id`` / ``enterprise_id`` / ``app_id`` is not for this connector (for the
    log), or None when it is. An id the request does not carry, or that auth.test did not report, is not
    compared."""
    if ours.app_id and app_id and app_id != ours.app_id:
        return f"app {app_id} (this connector is app {ours.app_id})"
    if ours.enterprise_install:
        # An org-wide install serves every workspace of the organisation: compare the organisation.
        if ours.enterprise_id and enterprise_id and enterprise_id != ours.enterprise_id:
            return f"organisation {enterprise_id} (this connector serves {ours.enterprise_id})"
        return None
    if ours.team_id and team_id and team_id != ours.team_id:
        return f"workspace {team_id} (this connector serves {ours.team_id})"
    return None


def may_act(
    user_id: str,
    *,
    agent_links: Mapping[str, str],
    user_agent_id: str | None = None,
    assigned_agent_id: str | None = None,
) -> bool:
    """Whether Slack user ``user_id`` may archive a conversation or run a command in it.

    ``agent_links``: host agent id -> Slack user id (empty: everyone may). ``user_agent_id``: the host agent the
    user was matched to otherwise (by email), if any; ``assigned_agent_id``: the conversation's agent."""
    if not agent_links or user_id in agent_links.values():
        return True
    return assigned_agent_id is not None and user_agent_id == assigned_agent_id


def card_matches(
    value: str,
    *,
    channel_id: str | None,
    message_ts: str | None,
    notice: Mapping[str, Any] | None,
    link: Mapping[str, Any] | None,
) -> bool:
    """Whether a Join click carrying ``value`` on the message ``message_ts`` in ``channel_id`` is a click on the
    card of conversation ``value``.

    ``notice``: what the connector recorded when it posted the card at that message (None if nothing: a card of
    an earlier version, or no card at all); ``link``: the channel link conversation ``value`` belongs to (None if
    unknown), whose ``notice_channel`` / ``notice_ts`` name its current card."""
    if not channel_id or not message_ts:
        return False
    if notice is not None:
        return notice.get("conversation_id") == value
    return link is not None and link.get("notice_channel") == channel_id and link.get("notice_ts") == message_ts
