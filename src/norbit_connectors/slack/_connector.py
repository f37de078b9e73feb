"""SlackConnector: conversations as Slack channels, agents answering from Slack.

Outbound (hub -> Slack), each hub event is one job: the first message (or a human takeover) creates the channel
and posts the notice card; every message is posted with Slack message metadata naming our conversation and message
ids, so that our own echoes are recognised and a post whose result was lost in a crash is found again instead of
being posted twice. Inbound (Slack -> hub): one Request URL for events, slash commands and interactivity; requests
are verified, deduplicated through the store's inbox and acknowledged at once, and processed by the hub's workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio

from .._connector import Connector, HttpResponse
from .._events import (
    AgentMessage,
    Archived,
    AssignmentChanged,
    BotMessage,
    CustomerMessage,
    DeliverReply,
    HubEvent,
    Notified,
    TakeOver,
)
from .._models import Agent, AgentReply, Attachment, Conversation, Message, User, converter
from .._redact import protect
from ..exceptions import (
    ConfigurationError,
    InvalidRequest,
    NotFound,
    RateLimited,
    RemoteError,
    TransportError,
    UsageError,
)
from ..store import Batch, Job, NewJob, Put
from . import _inbound
from ._authz import NOT_ALLOWED, Authorizer, ephemeral
from ._blocks import JOIN_ACTION_ID, notice_blocks, notice_fallback_text
from ._config import SlackConfig
from ._files import file_note
from ._keys import CHANNELS, CONVERSATIONS, LINKS, MESSAGES, NOTICES, SENDING, TIMESTAMPS, USERS
from ._limits import SlackLimiter
from ._links import attachment_link
from ._mrkdwn import escape, mentioned_user_ids, to_plain_text
from ._naming import channel_name_candidates
from ._signature import header, verify_signature
from ._text import split_text
from ._transport import SlackTransport

__all__ = ["METADATA_EVENT_TYPE", "SlackConnector"]

log = logging.getLogger("norbit_connectors.slack")

# The plain acknowledgement, shared: responses are immutable.
_OK = HttpResponse(status=200)

#: The ``event_type`` of the Slack message metadata on every message we post.
METADATA_EVENT_TYPE = "norbit_message"


# How many unfinished postings the connector remembers (see SlackConnector._posting).
_POSTING_REMEMBERED = 10_000

USER_CACHE_SECONDS = 3600.0
CREATE_LEASE_SECONDS = 60.0
HISTORY_LOOKBACK = 200


def _mkey(conversation_id: str, message_id: str) -> str:
    return f"{conversation_id}\x1f{message_id}"


class SlackConnector(Connector):
    """The agent-side connector for Slack. See :class:`SlackConfig` for its settings."""

    name = "slack"
    role = "agent"

    def __init__(self, config: SlackConfig, *, limiter: SlackLimiter | None = None) -> None:
        if not isinstance(config, SlackConfig):
            raise UsageError("SlackConnector takes a SlackConfig")
        self.config = config
        protect(self, config.bot_token, config.signing_secret, config.user_token)
        self.transport = SlackTransport(config, limiter=limiter)
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self.installer_user_id: str | None = None
        self.authz = Authorizer(self)  # who may act: the workspace and app requests must come from, agents
        # Jobs whose posting started in this process and did not finish: the hub may try one again at once,
        # under the same lease, and that second try must look for what the first one posted.
        self._posting: dict[int, None] = {}

    def __repr__(self) -> str:
        return f"SlackConnector(main_channel={self.config.main_channel!r}, base_url={self.config.base_url!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def _start(self) -> None:
        who = await self.transport.call("auth.test")
        self.bot_user_id = str(who.get("user_id") or "") or None
        self.team_id = str(who.get("team_id") or "") or None
        self.authz.learn(who)
        # Every process on the hub's store paces this workspace's calls with the same rate cells (an install
        # whose auth.test names no team: its organisation's; neither: this process's own cells).
        self.transport.limiter.share(self.context.store, self.team_id or str(who.get("enterprise_id") or ""))
        if self.transport.has_user_token:
            owner = await self.transport.call("auth.test", as_user=True)
            self.installer_user_id = str(owner.get("user_id") or "") or None

    async def _stop(self) -> None:
        self.transport.limiter.share(None)

    # -- store helpers -----------------------------------------------------------------------------------

    async def _doc(self, namespace: str, key: str) -> tuple[dict[str, Any] | None, int]:
        doc = await self.context.store.get(namespace, key)
        if doc is None:
            return None, 0
        return dict(doc.value), doc.version

    async def _put(self, *puts: Put) -> bool:
        result = await self.context.store.commit(Batch(puts=puts), now=self.context.now())
        return result.ok

    def _link_key(self, conversation: Conversation) -> str:
        if self.config.channel_per == "user":
            return f"user:{conversation.user.id}"
        return f"conv:{conversation.id}"

    # -- outbound: hub events ----------------------------------------------------------------------------

    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        if isinstance(event, CustomerMessage):
            link = await self._ensure_channel(event.conversation, reopen=event.reopened)
            return await self._post_message(
                link,
                event.conversation,
                event.message,
                username=event.conversation.user.name,
                icon_url=event.conversation.user.avatar_url,
                job=job,
                replay=event.replay,
            )
        if isinstance(event, AgentMessage):
            link = await self._ensure_channel(event.conversation, reopen=False)
            return await self._post_message(
                link,
                event.conversation,
                event.message,
                username=event.agent.name if event.agent is not None else "Agent",
                icon_url=None,
                job=job,
                replay=event.replay,
            )
        if isinstance(event, BotMessage):
            link = await self._ensure_channel(event.conversation, reopen=False)
            return await self._post_message(
                link,
                event.conversation,
                event.message,
                username=self.config.bot_name,
                icon_url=None,
                job=job,
                replay=event.replay,
            )
        if isinstance(event, TakeOver):
            await self._ensure_channel(event.conversation, reopen=False)
            return None
        if isinstance(event, Archived):
            await self._archive(event.conversation_id)
            return None
        if isinstance(event, Notified):
            await self._notified(event)
            return None
        if isinstance(event, AssignmentChanged):
            await self._assignment(event)
            return None
        if isinstance(event, DeliverReply):
            raise UsageError("the Slack connector does not deliver replies to customers")
        raise UsageError(f"unknown event {type(event).__name__}")

    async def _ensure_channel(self, conversation: Conversation, *, reopen: bool) -> dict[str, Any]:
        """The link (channel) of a conversation, creating or reopening the channel as needed."""
        key = self._link_key(conversation)
        while True:
            link, version = await self._doc(LINKS, key)
            if link is not None and link.get("channel"):
                if link.get("archived"):
                    await self._reopen(key, link, version, conversation)
                    continue
                if conversation.id not in link.get("open", []) or link.get("conversation_id") != conversation.id:
                    link["open"] = sorted({*link.get("open", []), conversation.id})
                    link["conversation_id"] = conversation.id
                    if not await self._put(
                        Put(namespace=LINKS, key=key, value=link, expected_version=version),
                        Put(namespace=CONVERSATIONS, key=conversation.id, value={"link": key}),
                        Put(
                            namespace=CHANNELS,
                            key=link["channel"],
                            value={"link": key, "conversation_id": conversation.id},
                        ),
                    ):
                        continue
                if not link.get("notice_ts"):
                    await self._post_notice(key, conversation)
                    continue
                return link
            await self._create_channel(key, link, version, conversation, continued_from=None)

    async def _claim_creation(self, key: str, link: dict[str, Any] | None, version: int) -> dict[str, Any] | None:
        now = self.context.now()
        creating = (link or {}).get("creating")
        if creating and float(creating.get("until", 0)) > now:
            # Another worker (maybe another process) is creating this channel right now.
            raise RateLimited("channel is being created", retry_after=0.25, code="channel_creating", service="slack")
        claimed = dict(link or {})
        claimed["creating"] = {"until": now + CREATE_LEASE_SECONDS}
        if not await self._put(Put(namespace=LINKS, key=key, value=claimed, expected_version=version)):
            return None
        return claimed

    async def _create_channel(
        self,
        key: str,
        link: dict[str, Any] | None,
        version: int,
        conversation: Conversation,
        *,
        continued_from: str | None,
    ) -> None:
        claimed = await self._claim_creation(key, link, version)
        if claimed is None:
            return  # lost the race: look again
        _, claimed_version = await self._doc(LINKS, key)
        try:
            channel = await self._create_slack_channel(conversation, adopt=bool(claimed.get("create_unsure")))
        except BaseException as exc:
            # Let the next attempt (or another worker) create it without waiting for the claim to expire. If the
            # answer was lost, Slack may have created the channel: the next attempt looks for it first.
            with anyio.CancelScope(shield=True):
                released = {k: v for k, v in claimed.items() if k != "creating"}
                if isinstance(exc, TransportError):
                    released["create_unsure"] = True
                await self._put(Put(namespace=LINKS, key=key, value=released, expected_version=claimed_version))
            raise
        new_link: dict[str, Any] = {
            "channel": channel["id"],
            "name": channel["name"],
            "archived": False,
            "private": self.config.private_channels,
            "open": [conversation.id],
            "conversation_id": conversation.id,
            "previous": [*claimed.get("previous", []), *([continued_from] if continued_from else [])],
            "joined": [],
        }
        ok = await self._put(
            Put(namespace=LINKS, key=key, value=new_link, expected_version=claimed_version),
            Put(namespace=CONVERSATIONS, key=conversation.id, value={"link": key}),
            Put(namespace=CHANNELS, key=channel["id"], value={"link": key, "conversation_id": conversation.id}),
        )
        if not ok:
            raise RemoteError("the channel link changed while the channel was being created", code="conflict")
        if self.installer_user_id and self.installer_user_id != self.bot_user_id:
            await self._invite(channel["id"], [self.installer_user_id])
        if self.config.agent_linking:
            await self._invite(channel["id"], self._linked_users_for(conversation))
        if continued_from:
            await self.transport.call(
                "chat.postMessage",
                channel=channel["id"],
                text=f"Continued from <#{continued_from}>",
                metadata={"event_type": METADATA_EVENT_TYPE, "event_payload": {"conversation_id": conversation.id}},
            )

    async def _create_slack_channel(self, conversation: Conversation, *, adopt: bool) -> dict[str, Any]:
        user = conversation.user
        for name in channel_name_candidates(user.name, fallback_id=user.id, prefix=self.config.channel_prefix):
            try:
                created = await self.transport.call(
                    "conversations.create", name=name, is_private=self.config.private_channels
                )
            except RemoteError as exc:
                if exc.code == "name_taken":
                    orphan = await self._orphan_channel(name) if adopt else None
                    if orphan is not None:
                        log.info("conversation %s: adopting channel %s created by a lost call", conversation.id, name)
                        return orphan
                    continue
                raise
            channel = created["channel"]
            return {"id": str(channel["id"]), "name": str(channel.get("name", name))}
        raise RemoteError(f"every channel name for {user.id!r} is taken", code="name_taken", service="slack")

    async def _orphan_channel(self, name: str) -> dict[str, Any] | None:
        """A live channel called ``name`` that our bot created but no conversation knows: one whose
        conversations.create answer was lost."""
        kind = "private_channel" if self.config.private_channels else "public_channel"
        cursor = ""
        for _ in range(20):
            listed = await self.transport.call(
                "conversations.list", types=kind, exclude_archived=True, limit=1000, cursor=cursor
            )
            for channel in listed.get("channels", []):
                if channel.get("name") != name or channel.get("creator") != self.bot_user_id:
                    continue
                if await self.context.store.get(CHANNELS, str(channel["id"])) is None:
                    return {"id": str(channel["id"]), "name": name}
                return None
            cursor = str((listed.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return None
        return None

    def _linked_users_for(self, conversation: Conversation) -> list[str]:
        links = self.config.agent_links
        if conversation.agent_id is not None:
            user = links.get(conversation.agent_id)
            return [user] if user else []
        agents = self.context.agents
        if conversation.department_id is not None:
            return sorted(
                links[a]
                for a in links
                if a in agents
                and (not agents[a].department_ids or conversation.department_id in agents[a].department_ids)
            )
        return sorted(set(links.values()))

    async def _invite(self, channel: str, users: Sequence[str]) -> None:
        users = [u for u in users if u and u != self.bot_user_id]
        if not users:
            return
        try:
            await self.transport.call("conversations.invite", channel=channel, users=",".join(users))
        except RemoteError as exc:
            if exc.code in ("already_in_channel", "cant_invite_self"):
                return
            if exc.code == "failed_for_some_users" and len(users) > 1:
                for user in users:  # invite one by one so that the others still get in
                    await self._invite(channel, [user])
                return
            raise

    async def _reopen(self, key: str, link: dict[str, Any], version: int, conversation: Conversation) -> dict[str, Any]:
        old = str(link["channel"])
        if self.transport.has_user_token:
            try:
                await self.transport.call("conversations.unarchive", channel=old, as_user=True)
                unarchived = True
            except RemoteError as exc:
                unarchived = exc.code == "not_archived"
                if not unarchived and exc.code not in ("channel_not_found", "not_in_channel", "restricted_action"):
                    raise
            if unarchived:
                await self._rejoin(old, private=bool(link.get("private", True)))
                link = {**link, "archived": False}
                if await self._put(Put(namespace=LINKS, key=key, value=link, expected_version=version)):
                    log.info("conversation %s: reopened channel %s", conversation.id, old)
                return link
        # Bot tokens cannot unarchive: continue in a new channel that points back to the old one.
        fresh = {k: v for k, v in link.items() if k in ("previous",)}
        fresh["previous"] = [*link.get("previous", [])]
        if not await self._put(Put(namespace=LINKS, key=key, value=fresh, expected_version=version)):
            return link
        await self._forget_card(link)
        _, fresh_version = await self._doc(LINKS, key)
        await self._create_channel(key, fresh, fresh_version, conversation, continued_from=old)
        log.info("conversation %s: continued from archived channel %s", conversation.id, old)
        return link

    async def _rejoin(self, channel: str, *, private: bool) -> None:
        if not private:
            try:
                await self.transport.call("conversations.join", channel=channel)
            except RemoteError as exc:
                if exc.code != "already_in_channel":
                    raise
            return
        if self.bot_user_id and self.transport.has_user_token:
            try:
                await self.transport.call("conversations.invite", channel=channel, users=self.bot_user_id, as_user=True)
            except RemoteError as exc:
                if exc.code not in ("already_in_channel", "cant_invite_self"):
                    raise

    # -- the notice card ---------------------------------------------------------------------------------

    def _user_fields(self, user: User) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        for name in self.config.user_details:
            value: Any = None
            if name in ("email", "avatar_url", "id", "name"):
                value = getattr(user, name)
            if value is None:
                value = user.details.get(name)
            if value is not None and str(value):
                fields.append((name.replace("_", " ").capitalize(), str(value)))
        return fields

    async def _first_customer_text(self, conversation_id: str) -> str:
        for entry in await self.context.transcript(conversation_id):
            if entry.role == "customer":
                return entry.message.text
        return ""

    def _card(self, card: Mapping[str, Any], link: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str]:
        blocks = notice_blocks(
            conversation_id=str(card["conversation_id"]),
            user_name=str(card["user_name"]),
            user_fields=[(str(a), str(b)) for a, b in card["fields"]],
            first_message=str(card["first_message"]),
            channel_id=str(link["channel"]),
            channel_name=str(link.get("name", "")),
            team_id=self.team_id,
            department_name=card.get("department_name"),
            joined_by=list(link.get("joined", [])),
            assigned_to=card.get("assigned_to"),
        )
        text = notice_fallback_text(
            user_name=str(card["user_name"]),
            first_message=str(card["first_message"]),
            department_name=card.get("department_name"),
        )
        return blocks, text

    async def _post_notice(self, key: str, conversation: Conversation) -> None:
        link, version = await self._doc(LINKS, key)
        if link is None or link.get("notice_ts"):
            return
        now = self.context.now()
        posting = link.get("notice_posting")
        if posting and float(posting.get("until", 0)) > now:
            # Another job (another conversation of the same customer) is posting this channel's notice.
            raise RateLimited("notice is being posted", retry_after=0.25, code="notice_posting", service="slack")
        notice_channel = self.config.notice_channel(conversation.department_id)
        claimed = {**link, "notice_posting": {"until": now + CREATE_LEASE_SECONDS, "attempted": True}}
        if not await self._put(Put(namespace=LINKS, key=key, value=claimed, expected_version=version)):
            return  # the link changed: the caller looks again
        if posting and posting.get("attempted"):
            # An earlier attempt may have posted it and lost the answer: look before posting again.
            found = await self._find_notice(str(posting.get("channel") or notice_channel), key)
            if found is not None:
                card_for = str((posting.get("card") or {}).get("conversation_id") or conversation.id)
                await self._record_notice(str(posting.get("channel") or notice_channel), found, key, card_for)
                await self._merge_link(
                    key,
                    {
                        "notice_ts": found,
                        "notice_channel": posting.get("channel") or notice_channel,
                        "card": posting.get("card"),
                        "notice_posting": None,
                    },
                )
                return
        department = self.context.departments.get(conversation.department_id or "")
        assigned = self.config.agent_links.get(conversation.agent_id or "")
        card = {
            "conversation_id": conversation.id,
            "user_name": conversation.user.name,
            "fields": self._user_fields(conversation.user),
            "first_message": await self._first_customer_text(conversation.id),
            "department_name": department.name if department else None,
            "assigned_to": assigned,
        }
        blocks, text = self._card(card, link)
        await self._merge_link(
            key, {"notice_posting": {**claimed["notice_posting"], "channel": notice_channel, "card": card}}
        )
        try:
            posted = await self._post_to_notice_channel(notice_channel, blocks, text, key)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._merge_link(
                    key, {"notice_posting": {"until": 0, "attempted": True, "channel": notice_channel, "card": card}}
                )
            raise
        await self._record_notice(notice_channel, posted, key, conversation.id)
        await self._merge_link(
            key, {"notice_ts": posted, "notice_channel": notice_channel, "card": card, "notice_posting": None}
        )

    async def _record_notice(self, channel: str, ts: str, key: str, conversation_id: str) -> None:
        """Remember which conversation the card at ``ts`` in ``channel`` is for: a Join click must match it."""
        value = {"link": key, "conversation_id": conversation_id}
        await self._put(Put(namespace=NOTICES, key=f"{channel}:{ts}", value=value))

    async def _forget_card(self, link: Mapping[str, Any] | None) -> None:
        """Delete the record of ``link``'s notice card (see :meth:`_record_notice`) once the link is archived or
        replaced; a click on that card still counts while the link names it."""
        if link and link.get("notice_channel") and link.get("notice_ts"):
            key = f"{link['notice_channel']}:{link['notice_ts']}"
            await self._put(Put(namespace=NOTICES, key=key, delete=True))

    async def _merge_link(self, key: str, changes: Mapping[str, Any]) -> None:
        """Apply ``changes`` to the latest link (None removes a key), however often others write it meanwhile."""
        await self._change_link(
            key, lambda link: {k: v for k, v in {**(link or {}), **changes}.items() if v is not None}
        )

    async def _change_link(
        self, key: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Write ``change(latest link)`` unless it is None, reading again and again while other jobs of the same
        link write it in between. Returns what was written, or None if ``change`` found nothing to do."""
        while True:
            link, version = await self._doc(LINKS, key)
            changed = change(link)
            if changed is None:
                return None
            if await self._put(Put(namespace=LINKS, key=key, value=changed, expected_version=version)):
                return changed

    async def _find_notice(self, channel: str, key: str) -> str | None:
        """The ts of the notice for link ``key`` in ``channel``, if one was posted (found by its metadata)."""
        try:
            history = await self.transport.call(
                "conversations.history", channel=channel, limit=HISTORY_LOOKBACK, include_all_metadata=True
            )
        except RemoteError:
            return None
        for item in history.get("messages", []):
            meta = item.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT_TYPE and payload.get("notice_for") == key:
                return str(item["ts"])
        return None

    async def _post_to_notice_channel(self, channel: str, blocks: list[dict[str, Any]], text: str, key: str) -> str:
        args: dict[str, Any] = {
            "channel": channel,
            "blocks": blocks,
            "text": text,
            "unfurl_links": False,
            "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"notice_for": key}},
        }
        try:
            posted = await self.transport.call("chat.postMessage", **args)
        except RemoteError as exc:
            if exc.code != "not_in_channel":
                raise
            # The bot can join a public notice channel by itself; a private one needs an invitation.
            await self.transport.call("conversations.join", channel=channel)
            posted = await self.transport.call("chat.postMessage", **args)
        return str(posted["ts"])

    async def _update_card(self, key: str) -> None:
        link, _ = await self._doc(LINKS, key)
        if link is None or not link.get("notice_ts") or not link.get("card"):
            return
        blocks, text = self._card(link["card"], link)
        try:
            await self.transport.call(
                "chat.update", channel=link["notice_channel"], ts=link["notice_ts"], blocks=blocks, text=text
            )
        except RemoteError as exc:
            if exc.code not in ("message_not_found", "channel_not_found", "is_archived", "cant_update_message"):
                raise
            log.info("notice card of %s could not be updated: %s", key, exc.code)

    # -- posting messages --------------------------------------------------------------------------------

    async def _post_message(
        self,
        link: dict[str, Any],
        conversation: Conversation,
        message: Message,
        *,
        username: str,
        icon_url: str | None,
        job: Job,
        replay: bool,
    ) -> Batch | None:
        mkey = _mkey(conversation.id, message.id)
        channel = str(link["channel"])
        done: dict[int, str] = {}
        old_marker = False
        # A first run of a live message's job cannot find anything of it in Slack: skip the look-ups. Any other
        # run (a replay, a retry, a job whose earlier lease ran out) first checks what was posted already.
        first_run = job.claims == 1 and job.attempts == 0 and not replay and job.id not in self._posting
        if not first_run:
            if (await self.context.store.get(MESSAGES, mkey)) is not None:
                return None  # posted before (a replay after a crash)
            # Written before each post by earlier versions of this connector: it names the channel used.
            marker, _ = await self._doc(SENDING, mkey)
            old_marker = marker is not None
            if marker is not None:
                channel = str(marker.get("channel", channel))
            done = await self._reconcile(channel, conversation.id, message.id)
        text = self._render_text(message)
        parts = split_text(text) if text else []
        self._posting[job.id] = None
        while len(self._posting) > _POSTING_REMEMBERED:
            del self._posting[next(iter(self._posting))]
        metadata_base = {"conversation_id": conversation.id, "message_id": message.id}
        for index, part in enumerate(parts):
            if index in done:
                continue
            args: dict[str, Any] = {
                "channel": channel,
                "text": part,
                "username": (username or "Customer")[:80],
                "unfurl_links": False,
                "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {**metadata_base, "part": index}},
            }
            if icon_url:
                args["icon_url"] = icon_url
            done[index] = await self._post_with_recovery(args, conversation)
            channel = str(args["channel"])
        uploaded = False
        for attachment in message.attachments:
            if attachment.content is not None and not done.get(-1):
                await self.transport.upload(channel=channel, filename=attachment.name, content=attachment.content)
                uploaded = True
        self._posting.pop(job.id, None)
        puts = [Put(namespace=SENDING, key=mkey, delete=True)] if old_marker else []
        first = done.get(0)
        if first is not None:
            puts.append(Put(namespace=MESSAGES, key=mkey, value={"channel": channel, "ts": first, "parts": len(parts)}))
            puts.extend(
                Put(
                    namespace=TIMESTAMPS,
                    key=f"{channel}:{ts}",
                    value={"conversation_id": conversation.id, "message_id": message.id},
                )
                for ts in done.values()
            )
        elif uploaded or not parts:
            puts.append(Put(namespace=MESSAGES, key=mkey, value={"channel": channel, "ts": None, "parts": 0}))
        return Batch(puts=puts)

    def _render_text(self, message: Message) -> str:
        text = escape(message.text)
        links = [attachment_link(a.url, a.name) for a in message.attachments if a.url and a.content is None]
        if links:
            text = (text + "\n" if text else "") + "\n".join(links)
        return text

    async def _post_with_recovery(self, args: dict[str, Any], conversation: Conversation) -> str:
        """chat.postMessage, handling what Slack can answer about the channel itself."""
        for _ in range(3):
            try:
                posted = await self.transport.call("chat.postMessage", **args)
                return str(posted["ts"])
            except RemoteError as exc:
                code = exc.code
                if code == "not_in_channel":
                    link, _ = await self._doc(LINKS, self._link_key(conversation))
                    await self._rejoin(str(args["channel"]), private=bool((link or {}).get("private", True)))
                    continue
                if code in ("is_archived", "channel_not_found"):
                    # Archived or deleted in Slack behind our back: reopen, or open a new channel.
                    key = self._link_key(conversation)
                    link, version = await self._doc(LINKS, key)
                    if link is not None and link.get("channel") == args["channel"]:
                        replaced = code != "is_archived"
                        old = link
                        link = {"previous": link.get("previous", [])} if replaced else {**link, "archived": True}
                        if await self._put(Put(namespace=LINKS, key=key, value=link, expected_version=version)):
                            await self._forget_card(old if replaced else None)
                    fresh = await self._ensure_channel(conversation, reopen=True)
                    args["channel"] = fresh["channel"]
                    continue
                raise
        raise RemoteError("could not post after recovering the channel", code="unrecoverable", service="slack")

    async def _reconcile(self, channel: str, conversation_id: str, message_id: str) -> dict[int, str]:
        """Parts of a message already in the channel (a post whose result was lost), by part index."""
        try:
            history = await self.transport.call(
                "conversations.history", channel=channel, limit=HISTORY_LOOKBACK, include_all_metadata=True
            )
        except NotFound:
            return {}
        except RemoteError as exc:
            if exc.code in ("not_in_channel", "is_archived"):
                return {}
            raise
        found: dict[int, str] = {}
        for item in history.get("messages", []):
            meta = item.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (
                meta.get("event_type") == METADATA_EVENT_TYPE
                and payload.get("conversation_id") == conversation_id
                and payload.get("message_id") == message_id
            ):
                found[int(payload.get("part", 0))] = str(item["ts"])
        if found:
            log.info(
                "conversation %s: message %s was already posted; not posting it again", conversation_id, message_id
            )
        return found

    # -- other outbound events ---------------------------------------------------------------------------

    async def _archive(self, conversation_id: str) -> None:
        ref, _ = await self._doc(CONVERSATIONS, conversation_id)
        if ref is None:
            return  # never reached Slack
        key = str(ref["link"])
        while True:
            link, version = await self._doc(LINKS, key)
            if link is None or not link.get("channel") or link.get("archived"):
                return
            still_open = [c for c in link.get("open", []) if c != conversation_id]
            if still_open:
                # Another conversation of the same customer still uses the channel.
                if await self._put(
                    Put(namespace=LINKS, key=key, value={**link, "open": still_open}, expected_version=version)
                ):
                    return
                continue
            await self._archive_channel(str(link["channel"]))
            if await self._put(
                Put(namespace=LINKS, key=key, value={**link, "open": [], "archived": True}, expected_version=version)
            ):
                await self._forget_card(link)
                return

    async def _archive_channel(self, channel: str) -> None:
        try:
            await self.transport.call("conversations.archive", channel=channel)
        except RemoteError as exc:
            if exc.code in ("already_archived", "channel_not_found"):
                return
            if exc.code == "not_in_channel":
                await self._rejoin(channel, private=False)
                await self.transport.call("conversations.archive", channel=channel)
                return
            raise

    async def _notified(self, event: Notified) -> None:
        ref, _ = await self._doc(CONVERSATIONS, event.conversation_id)
        if ref is None:
            return
        link, _ = await self._doc(LINKS, str(ref["link"]))
        if link is None or not link.get("channel") or link.get("archived"):
            return
        ways = [w for w in ("email", "sms") if w in event.notified_by]
        named = " and ".join("email" if w == "email" else "text message" for w in ways)
        await self.transport.call(
            "chat.postMessage",
            channel=link["channel"],
            text=f"The user has been notified by {named}.",
            metadata={"event_type": METADATA_EVENT_TYPE, "event_payload": {"conversation_id": event.conversation_id}},
        )

    async def _assignment(self, event: AssignmentChanged) -> None:
        ref, _ = await self._doc(CONVERSATIONS, event.conversation.id)
        if ref is None:
            return
        key = str(ref["link"])
        link, _ = await self._doc(LINKS, key)
        if link is None or not link.get("channel"):
            return
        agent_id = event.assignment.agent_id
        slack_user = self.config.agent_links.get(agent_id) if agent_id else None
        if slack_user and self.config.agent_linking and not link.get("archived"):
            await self._invite(str(link["channel"]), [slack_user])

        def assign(latest: dict[str, Any] | None) -> dict[str, Any] | None:
            card = dict((latest or {}).get("card") or {})
            if latest is None or not card or card.get("assigned_to") == slack_user:
                return None
            return {**latest, "card": {**card, "assigned_to": slack_user}}

        if await self._change_link(key, assign) is not None:
            await self._update_card(key)

    # -- inbound HTTP ------------------------------------------------------------------------------------

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        if method != "POST":
            return HttpResponse.text(405, "Slack sends POST requests")
        if self.config.signing_secret is None:
            raise InvalidRequest(
                "this Slack connector has no signing secret, so it cannot verify HTTP requests: set "
                "SlackConfig.signing_secret, or receive events over Socket Mode",
                status=401,
            )
        verify_signature(self.config.signing_secret, headers, body, now=None)
        content_type = header(headers, "Content-Type")
        return await self._dispatch(_inbound.parse_request(content_type, body), body)

    async def handle_socket_envelope(self, envelope_type: str, payload: Mapping[str, Any]) -> HttpResponse:
        """Process one Socket Mode envelope (``events_api``, ``slash_commands``, ``interactive``) exactly like
        the same request over HTTP. The answer's body (JSON, if any) is the payload to ack the envelope with."""
        if envelope_type == "events_api":
            body = json.dumps(payload).encode()
            inbound = _inbound.parse_request("application/json", body)
        elif envelope_type == "slash_commands":
            form = {str(k): str(v) for k, v in payload.items() if isinstance(v, str | int | float | bool)}
            body = urllib.parse.urlencode(form).encode()
            inbound = _inbound.parse_request("application/x-www-form-urlencoded", body)
        elif envelope_type == "interactive":
            body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
            inbound = _inbound.parse_request("application/x-www-form-urlencoded", body)
        else:
            return _OK
        return await self._dispatch(inbound, body)

    async def _dispatch(self, inbound: _inbound.Inbound, body: bytes) -> HttpResponse:
        if isinstance(inbound, _inbound.UrlVerification):
            return HttpResponse.json(200, {"challenge": inbound.challenge})
        if self._context is None:
            return HttpResponse.text(503, "the hub is not running")
        refused = self.authz.refuse_foreign(inbound)
        if refused is not None:
            return refused
        if isinstance(inbound, _inbound.EventCallback):
            return await self._accept_event(inbound, body)
        if isinstance(inbound, _inbound.SlashCommand):
            return await self._slash_command(inbound, body)
        if isinstance(inbound, _inbound.BlockActions):
            return await self._block_actions(inbound)
        return _OK

    async def _accept_event(self, inbound: _inbound.EventCallback, body: bytes) -> HttpResponse:
        event = inbound.event
        channel = getattr(event, "channel", None)
        if not isinstance(
            event,
            _inbound.MessageEvent | _inbound.MessageChanged | _inbound.MessageDeleted | _inbound.ChannelArchived,
        ):
            return _OK
        if isinstance(event, _inbound.MessageEvent) and (
            not _inbound.is_human_message(event, bot_user_id=self.bot_user_id) or _ours(event.metadata_event_type)
        ):
            return _OK
        raw = inbound.raw_event if inbound.raw_event else json.loads(body)["event"]
        job = NewJob(
            queue_key=f"slack:{channel or 'none'}",
            connector=self.name,
            kind="in.event",
            payload={"event": raw, "event_id": inbound.event_id},
        )
        await self.context.accept_inbound("slack", inbound.event_id, [job])
        return _OK

    async def _slash_command(self, command: _inbound.SlashCommand, body: bytes) -> HttpResponse:
        """Answered at once, from the store alone: whether the user may archive is decided in the worker (a
        user matched by email needs users.info, which may be slow), which tells a refused user ephemerally."""
        if command.command != "/archive":
            return ephemeral(f"Unknown command {command.command}.")
        ref, _ = await self._doc(CHANNELS, command.channel_id)
        if ref is None:
            return ephemeral("This channel is not linked to a customer conversation, so there is nothing to archive.")
        job = NewJob(
            queue_key=f"slack:{command.channel_id}",
            connector=self.name,
            kind="in.archive",
            payload={"channel": command.channel_id, "user_id": command.user_id, "check": True},
        )
        await self.context.accept_inbound("slack", _command_key(command, body), [job])
        if self.authz.allowed_at_once(command.user_id):
            return ephemeral(ARCHIVING)
        return ephemeral(CHECKING_ARCHIVE)

    async def _block_actions(self, actions: _inbound.BlockActions) -> HttpResponse:
        jobs = [
            NewJob(
                queue_key=f"slack:join:{action.value}",
                connector=self.name,
                kind="in.join",
                payload={
                    "conversation_id": action.value,
                    "user_id": actions.user_id,
                    "channel": actions.channel_id,
                    "message_ts": actions.message_ts,
                    "check": True,
                },
            )
            for action in actions.actions
            if action.action_id == JOIN_ACTION_ID and action.value
        ]
        if jobs:
            stamp = actions.trigger_id or "|".join(a.action_ts or "" for a in actions.actions)
            await self.context.accept_inbound("slack", f"act:{stamp}", jobs)
        return _OK

    # -- inbound processing (in the hub's workers) -------------------------------------------------------

    async def _process(self, job: Job) -> Batch | None:
        payload = job.payload
        if job.kind == "in.event":
            event = _inbound.parse_event(payload["event"])
            return await self._on_event(event)
        if job.kind == "in.archive":
            user = str(payload.get("user_id") or "")
            return await self._on_archive_command(str(payload["channel"]), user, check=bool(payload.get("check")))
        if job.kind == "in.join":
            # A job queued by an earlier version (no "check") was checked when it was queued.
            if payload.get("check"):
                channel = payload.get("channel")
                refusal = await self.authz.join_refusal(
                    str(channel) if channel else None,
                    str(payload["message_ts"]) if payload.get("message_ts") else None,
                    str(payload["user_id"]),
                    str(payload["conversation_id"]),
                )
                if refusal is not None:
                    if channel:
                        await self._tell_in(str(channel), str(payload["user_id"]), refusal)
                    return None
            await self._on_join(str(payload["conversation_id"]), str(payload["user_id"]))
            return None
        if job.kind == "in.tell":
            await self._tell_in(str(payload["channel"]), str(payload["user_id"]), str(payload["text"]))
            return None
        raise UsageError(f"the Slack connector has no job kind {job.kind!r}")

    async def _on_event(self, event: _inbound.SlackEvent) -> Batch | None:
        channel = getattr(event, "channel", None)
        if not channel:
            return None
        ref, _ = await self._doc(CHANNELS, channel)
        if ref is None:
            return None  # not one of our channels
        conversation_id = str(ref["conversation_id"])
        if isinstance(event, _inbound.ChannelArchived):
            return await self._on_channel_archived(str(ref["link"]), channel, conversation_id, event.user)
        if isinstance(event, _inbound.MessageEvent):
            if not _inbound.is_human_message(event, bot_user_id=self.bot_user_id) or _ours(event.metadata_event_type):
                return None
            if await self.authz.refuse_message(event.user, channel, conversation_id):
                return None
            return await self._on_agent_message(conversation_id, event)
        if isinstance(event, _inbound.MessageChanged):
            if not event.user or event.user == self.bot_user_id or event.bot_id or _ours(event.metadata_event_type):
                return None
            known, _ = await self._doc(TIMESTAMPS, f"{channel}:{event.ts}")
            if known is not None and not str(known.get("message_id", "")).startswith("slack:"):
                return None  # an edit of a message we posted ourselves
            if await self.authz.refuse_message(event.user, channel, conversation_id):
                return None
            reply = await self._reply(conversation_id, event.user, event.text, f"slack:{channel}:{event.ts}", ())
            return Batch(
                jobs=[self.context.hub_job("agent_edit", conversation_id, {"reply": converter.unstructure(reply)})]
            )
        if isinstance(event, _inbound.MessageDeleted):
            known, _ = await self._doc(TIMESTAMPS, f"{channel}:{event.deleted_ts}")
            if known is None or not str(known.get("message_id", "")).startswith("slack:"):
                return None
            if await self.authz.refuse_message(event.user, channel, conversation_id):
                return None
            return Batch(
                jobs=[
                    self.context.hub_job(
                        "agent_delete",
                        conversation_id,
                        {"conversation_id": conversation_id, "message_id": known["message_id"]},
                    )
                ]
            )
        return None

    async def _on_agent_message(self, conversation_id: str, event: _inbound.MessageEvent) -> Batch:
        attachments: list[Attachment] = []
        notes: list[str] = []
        for ref in event.files:
            url = ref.url_private_download or ref.url_private
            content = None
            if url and (ref.size is None or ref.size <= self.config.max_file_bytes):
                try:
                    content = await self.transport.download(url, limit=self.config.max_file_bytes)
                except NotFound as exc:
                    log.info("conversation %s: file %s not fetched: %s", conversation_id, ref.id, exc.code)
            if content is None:
                notes.append(file_note(ref.name or ref.title or ref.id))
            attachments.append(Attachment(name=ref.name or ref.id, content=content, content_type=ref.mimetype))
        message_id = f"slack:{event.channel}:{event.ts}"
        reply = await self._reply(conversation_id, event.user or "", event.text, message_id, attachments, notes)
        job = self.context.hub_job(
            "agent_reply", conversation_id, {"reply": converter.unstructure(reply), "origin": self.name}
        )
        mapping = Put(
            namespace=TIMESTAMPS,
            key=f"{event.channel}:{event.ts}",
            value={"conversation_id": conversation_id, "message_id": message_id},
        )
        return Batch(puts=[mapping], jobs=[job])

    async def _reply(
        self,
        conversation_id: str,
        slack_user: str,
        text: str,
        message_id: str,
        attachments: Sequence[Attachment],
        notes: Sequence[str] = (),
    ) -> AgentReply:
        names: dict[str, str] = {}
        for user in mentioned_user_ids(text):
            profile = await self._user_profile(user)
            if profile is not None:
                names[user] = str(profile.get("name") or user)
        plain = "\n".join(part for part in (to_plain_text(text, user_names=names), *notes) if part)
        agent = await self._agent_for(slack_user)
        return AgentReply(
            conversation_id=conversation_id,
            message=Message(id=message_id, text=plain, attachments=tuple(attachments)),
            agent=agent,
            slack_user_id=slack_user or None,
        )

    async def _user_profile(self, user_id: str) -> dict[str, Any] | None:
        cached, version = await self._doc(USERS, user_id)
        now = self.context.now()
        if cached is not None and float(cached.get("at", 0)) + USER_CACHE_SECONDS > now:
            return cached
        try:
            info = await self.transport.call("users.info", user=user_id)
        except NotFound:
            return None
        user = info.get("user") or {}
        profile = user.get("profile") or {}
        value = {
            "name": profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name"),
            "email": profile.get("email"),
            "at": now,
        }
        await self._put(Put(namespace=USERS, key=user_id, value=value, expected_version=version))
        return value

    async def _agent_for(self, slack_user: str) -> Agent | None:
        agents = self.context.agents
        agent_id = self.config.linked_users.get(slack_user)
        if agent_id is not None and agent_id in agents:
            return agents[agent_id]
        if not slack_user:
            return None
        profile = await self._user_profile(slack_user)
        email = str((profile or {}).get("email") or "").lower()
        if email:
            for agent in agents.values():
                if agent.email and agent.email.lower() == email:
                    return agent
        return None

    async def _on_channel_archived(
        self, key: str, channel: str, conversation_id: str, user_id: str | None
    ) -> Batch | None:
        link, _ = await self._doc(LINKS, key)
        if link is None or link.get("channel") != channel:
            return None
        # Archived by us (the link says so already), or by someone who may: the conversation is archived too.
        refused = None if link.get("archived") else await self.authz.refuse_archive(user_id, channel, conversation_id)
        if refused == "archived":
            # Still archived in Slack, the conversation open: its next message reopens or continues the channel.
            await self._change_link(key, _archived_change(channel))
        if refused is not None:
            return None
        await self._forget_card(await self._change_link(key, _archived_change(channel)))
        return Batch(
            jobs=[self.context.hub_job("archived_remotely", conversation_id, {"conversation_id": conversation_id})]
        )

    async def _on_archive_command(self, channel: str, user_id: str, *, check: bool) -> Batch | None:
        ref, _ = await self._doc(CHANNELS, channel)
        if ref is None:
            return None
        key = str(ref["link"])
        conversation_id = str(ref["conversation_id"])
        # A job queued by an earlier version (check False) was checked when it was queued.
        if check and not await self.authz.may_act(user_id, conversation_id):
            log.warning("conversation %s: refused /archive of %s, who is not an agent of it", conversation_id, user_id)
            await self._tell_in(channel, user_id, NOT_ALLOWED.format(what="archive this conversation"))
            return None
        link, _ = await self._doc(LINKS, key)
        if link is not None and link.get("channel") == channel and not link.get("archived"):
            await self._archive_channel(channel)
            await self._forget_card(await self._change_link(key, _archived_change(channel)))
        return Batch(
            jobs=[self.context.hub_job("archived_remotely", conversation_id, {"conversation_id": conversation_id})]
        )

    async def _on_join(self, conversation_id: str, user_id: str) -> None:
        ref, _ = await self._doc(CONVERSATIONS, conversation_id)
        if ref is None:
            return
        key = str(ref["link"])
        link, _ = await self._doc(LINKS, key)
        if link is None or not link.get("channel"):
            return
        if self.context.routing_mode == "manual":
            # Manual routing: the click is the claim, and the first click wins.
            agent = await self._agent_for(user_id)
            if agent is None:
                await self._tell(link, user_id, "Your Slack account is not linked to an agent, so you cannot take it.")
                return
            holder = await self.context.claim(conversation_id, agent.id)
            if holder != agent.id:
                holder_agent = self.context.agents.get(holder)
                who = holder_agent.name if holder_agent is not None else holder
                await self._tell(link, user_id, f"{who} already has this conversation.")
                return
            link, _ = await self._doc(LINKS, key)
            if link is None:
                return
        if not link.get("archived"):
            await self._invite(str(link["channel"]), [user_id])

        def add(latest: dict[str, Any] | None) -> dict[str, Any] | None:
            joined = list((latest or {}).get("joined", []))
            if latest is None or user_id in joined:
                return None
            return {**latest, "joined": [*joined, user_id]}

        if await self._change_link(key, add) is not None:
            await self._update_card(key)

    async def _tell(self, link: Mapping[str, Any], user_id: str, text: str) -> None:
        """An ephemeral note to one user under the notice card."""
        channel = link.get("notice_channel")
        if channel:
            await self._tell_in(str(channel), user_id, text)

    async def _tell_in(self, channel: str, user_id: str, text: str) -> None:
        """An ephemeral note to one user in ``channel``."""
        try:
            await self.transport.call("chat.postEphemeral", channel=channel, user=user_id, text=text)
        except RemoteError as exc:
            log.info("could not tell %s: %s", user_id, exc.code)

    # -- conveniences ------------------------------------------------------------------------------------

    async def channel_for(self, conversation_id: str) -> str | None:
        """The Slack channel id a conversation is mirrored to, or None."""
        ref, _ = await self._doc(CONVERSATIONS, conversation_id)
        if ref is None:
            return None
        link, _ = await self._doc(LINKS, str(ref["link"]))
        return None if link is None else link.get("channel")

    def asgi_app(self) -> Any:
        """This connector's Request URL as an ASGI application (uvicorn, Starlette, FastAPI, ...)."""
        if self.config.signing_secret is None:
            raise ConfigurationError(
                "SlackConfig.signing_secret is needed to serve a Request URL (Basic Information page of the app)"
            )
        from ._asgi import asgi_app

        return asgi_app(self)


def _archived_change(channel: str) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """A link change marking ``channel`` archived, if the link still names it and it is not marked yet."""

    def change(link: dict[str, Any] | None) -> dict[str, Any] | None:
        if link is None or link.get("channel") != channel or link.get("archived"):
            return None
        return {**link, "archived": True, "open": []}

    return change


ARCHIVING = "Archiving this conversation and its channel."
CHECKING_ARCHIVE = "Checking that you may archive this conversation: if you may, its channel is archived."


def _command_key(command: _inbound.SlashCommand, body: bytes) -> str:
    """The inbox key of a slash command: its trigger id, or a digest of the request without one (a command is
    never taken for another)."""
    if command.trigger_id:
        return f"cmd:{command.trigger_id}"
    return f"cmd-body:{hashlib.sha256(body).hexdigest()}"


def _ours(metadata_event_type: str | None) -> bool:
    return metadata_event_type == METADATA_EVENT_TYPE
