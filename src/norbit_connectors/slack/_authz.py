"""Who may do what from Slack (pure decisions; the connector looks the facts up).

- :func:`foreign`: a request of another workspace, organisation or app is refused. Slack signs every request
  with the app's signing secret, so a valid signature says "this app", not "this workspace": an app installed in
  a second workspace receives that workspace's events too.
- :func:`may_act`: with ``agent_links`` set, only linked agents and the conversation's assigned agent may
  archive it or run the connector's commands; without links, every member of the channel may (as before).
- :func:`card_matches`: a Join click counts only for the conversation of the card that was clicked.
- :class:`Authorizer`: the connector's checks, which look the facts up (in the hub's workers).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

from .._connector import HttpResponse
from ..exceptions import RateLimited, RemoteError, TransportError
from ._inbound import BlockActions, EventCallback, Inbound, SlashCommand
from ._keys import CONVERSATIONS, LINKS, NOTICES

if TYPE_CHECKING:
    from ._connector import SlackConnector

__all__ = ["Authorizer", "Ours", "card_matches", "ephemeral", "foreign", "may_act"]

log = logging.getLogger("norbit_connectors.slack")


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
    log), or None when it is. Once auth.test named the app, and the workspace (or, for an org-wide install, the
    organisation), a request must carry the same ids: one carrying none is refused too, as Slack puts them on
    every event, command and click. Only what auth.test did not report is not compared."""
    if ours.app_id and app_id != ours.app_id:
        return f"app {app_id or '(none named)'} (this connector is app {ours.app_id})"
    if ours.enterprise_install and ours.enterprise_id:
        # An org-wide install serves every workspace of the organisation: compare the organisation.
        if enterprise_id != ours.enterprise_id:
            return f"organisation {enterprise_id or '(none named)'} (this connector serves {ours.enterprise_id})"
        return None
    if ours.enterprise_id and enterprise_id and enterprise_id != ours.enterprise_id:
        return f"organisation {enterprise_id} (this connector serves {ours.enterprise_id})"
    if ours.team_id and team_id != ours.team_id:
        return f"workspace {team_id or '(none named)'} (this connector serves {ours.team_id})"
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


# ------------------------------------------------------------------------------------------ the connector's checks

#: What a refused user is told; ``what`` is the action ("archive this conversation").
NOT_ALLOWED = "Only the agents linked to this app, and the conversation's assigned agent, can {what}."
NOT_RELAYED = (
    "Only the messages of the agents linked to this app, and of the conversation's assigned agent, reach the "
    "customer: this was not sent to them."
)
NOT_THIS_CARD = "This Join button does not belong to this card, so nothing was done."
NOT_OUR_WORKSPACE = "This app does not serve this workspace, so nothing was done."


def ephemeral(text: str) -> HttpResponse:
    """An answer to a slash command that only its user sees."""
    return HttpResponse.json(200, {"response_type": "ephemeral", "text": text})


class Authorizer:
    """Who may act from Slack, for one connector: its workspace and app (from auth.test), and the checks that
    look facts up (the conversation's agent, a user's email). The look-ups run in the hub's workers, never
    while Slack waits for an acknowledgement."""

    def __init__(self, connector: SlackConnector) -> None:
        self._connector = connector
        self.ours = Ours()

    def learn(self, who: Mapping[str, Any]) -> None:
        """Remember the workspace and app auth.test's answer ``who`` names."""
        self.ours = Ours.from_auth_test(who)

    def refuse_foreign(self, inbound: Inbound) -> HttpResponse | None:
        """The answer to a request of another workspace or app: acknowledged, logged, nothing done. A 200, so
        that Slack neither retries it nor counts it as a failed delivery of the app's (our) subscription."""
        if not isinstance(inbound, EventCallback | SlashCommand | BlockActions):
            return None
        reason = foreign(
            self.ours, team_id=inbound.team_id, enterprise_id=inbound.enterprise_id, app_id=inbound.api_app_id
        )
        if reason is None:
            return None
        log.warning("refused a Slack request of %s", reason)
        if isinstance(inbound, SlashCommand):
            return ephemeral(NOT_OUR_WORKSPACE)
        return HttpResponse(status=200)

    def allowed_at_once(self, user_id: str) -> bool:
        """Whether ``user_id`` may act in every conversation, as the configuration alone says (no look-up)."""
        return may_act(user_id, agent_links=self._connector.config.agent_links)

    async def may_act(self, user_id: str | None, conversation_id: str) -> bool:
        """Whether ``user_id`` may act in conversation ``conversation_id`` (see :func:`may_act`); the user's
        email is looked up only for a conversation with an agent. A failure Slack may get over (rate limit,
        transport) is raised, so that the job is tried again; any other failure of the look-up refuses."""
        if not user_id:
            return not self._connector.config.agent_links
        if self.allowed_at_once(user_id):
            return True
        connector = self._connector
        state = await connector.context.conversation_state(conversation_id)
        assigned = state.conversation.agent_id if state is not None else None
        if assigned is None:
            return False
        try:
            agent = await connector._agent_for(user_id)
        except (RateLimited, TransportError):
            raise
        except RemoteError as exc:
            log.info("could not look up Slack user %s: %s", user_id, exc.code)
            agent = None
        return may_act(
            user_id,
            agent_links=connector.config.agent_links,
            user_agent_id=agent.id if agent else None,
            assigned_agent_id=assigned,
        )

    async def join_refusal(
        self, channel_id: str | None, message_ts: str | None, user_id: str, value: str
    ) -> str | None:
        """Why a Join click carrying ``value`` on the message ``message_ts`` in ``channel_id`` is refused (for
        the clicker), or None to go ahead."""
        connector = self._connector
        notice = None
        if channel_id and message_ts:
            notice, _ = await connector._doc(NOTICES, f"{channel_id}:{message_ts}")
        ref, _ = await connector._doc(CONVERSATIONS, value)
        link = (await connector._doc(LINKS, str(ref["link"])))[0] if ref is not None else None
        if not card_matches(value, channel_id=channel_id, message_ts=message_ts, notice=notice, link=link):
            log.warning("refused a Join click of %s: its value is not the conversation of that card", user_id)
            return NOT_THIS_CARD
        if not await self.may_act(user_id, value):
            log.warning("refused a Join click of %s, who is not an agent of that conversation", user_id)
            return NOT_ALLOWED.format(what="join this conversation")
        return None

    async def refuse_message(self, user_id: str | None, channel: str, conversation_id: str) -> bool:
        """Whether a message, edit or deletion of ``user_id`` in the conversation's ``channel`` is kept from
        the customer (the user is told so); with ``agent_links`` set, only agents reach the customer."""
        if not self._connector.config.agent_links or await self.may_act(user_id, conversation_id):
            return False
        log.warning("conversation %s: not relaying what %s wrote, who is not an agent of it", conversation_id, user_id)
        if user_id:
            await self._connector._tell_in(channel, user_id, NOT_RELAYED)
        return True

    async def refuse_archive(self, user_id: str | None, channel: str, conversation_id: str) -> str | None:
        """None when ``user_id`` may archive ``channel`` in Slack; otherwise the conversation stays open, the
        user is told, and the answer says what became of the channel: ``"unarchived"`` again (with a user
        token), or ``"archived"`` still (a bot cannot unarchive)."""
        connector = self._connector
        if not connector.config.agent_links or (user_id and user_id == connector.bot_user_id):
            return None
        if await self.may_act(user_id, conversation_id):
            return None
        unarchived = False
        if connector.transport.has_user_token:
            try:
                await connector.transport.call("conversations.unarchive", channel=channel, as_user=True)
                unarchived = True
            except RemoteError as exc:
                unarchived = exc.code == "not_archived"
                if not unarchived:
                    log.info("could not unarchive channel %s: %s", channel, exc.code)
        log.warning(
            "conversation %s: %s, who is not an agent of it, archived its channel %s; the conversation stays open%s",
            conversation_id,
            user_id,
            channel,
            " and the channel was unarchived" if unarchived else "",
        )
        outcome = "unarchived" if unarchived else "archived"
        if not user_id:
            return outcome
        what = NOT_ALLOWED.format(what="archive this conversation")
        ref, _ = await connector._doc(CONVERSATIONS, conversation_id)
        link = ((await connector._doc(LINKS, str(ref["link"])))[0] if ref is not None else None) or {}
        if unarchived:
            await connector._rejoin(channel, private=bool(link.get("private", True)))
            await connector._tell_in(channel, user_id, f"{what} The channel was unarchived.")
            return outcome
        # A bot cannot write in an archived channel: a direct message, or a note under the notice card.
        note = f"{what} The conversation stays open; its next message opens a new channel."
        try:
            await connector.transport.call("chat.postMessage", channel=user_id, text=note)
        except RemoteError as exc:
            log.info("could not write to %s directly (%s): telling them under the notice card", user_id, exc.code)
            await connector._tell(link, user_id, note)
        return outcome
