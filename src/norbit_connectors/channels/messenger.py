"""Facebook Messenger and Instagram Direct (Messenger Platform): people write to your page or its Instagram
account; agents' replies go back through the Send API.

Subscribe the page (and the Instagram account) to ``messages`` and ``message_echoes`` and route the webhook (GET
and POST) to :meth:`MessengerConnector.handle_http`. Conversations are ``messenger:<PSID>`` and
``instagram:<IGSID>``; both have ``source == "messenger"``. Replies sent from the page's own inbox (Meta Business
Suite) arrive as echoes and are kept in the conversation's transcript as agent messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Literal

from attrs import evolve, field, frozen

from .._connector import HttpResponse
from .._events import DeliverReply
from .._models import Attachment, Conversation, Message, User, converter
from ..exceptions import ConfigurationError, InvalidRequest, NotFound, PermissionDenied
from ..store import Batch, Job, NewJob, Put
from . import _render as render
from ._base import (
    ChannelConnector,
    InboundMessage,
    MediaRef,
    chunk_text,
    dict_field,
    int_field,
    kinds_shown,
    list_field,
    media_label,
    shown_id,
    skipped,
    str_field,
)
from ._graph import GraphError, graph_call
from ._http import json_object, meta_handshake, verify_meta_signature

__all__ = ["MessengerConfig", "MessengerConnector", "PageEcho", "parse_webhook"]

SERVICE = "messenger"
TEXT_LIMIT = 2000
WINDOW_SECONDS = 24 * 3600.0
ECHO_JOB = "in.echo"
OUTSIDE_WINDOW = 2018278
log = logging.getLogger("norbit_connectors.channels.messenger")
Platform = Literal["messenger", "instagram"]


@frozen(kw_only=True)
class MessengerConfig:
    """A Facebook page (with its linked Instagram account, if any) and its page access token."""

    page_access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    page_id: str
    department_id: str | None = None
    base_url: str = "https://graph.facebook.com/v21.0"
    max_file_bytes: int = 25 << 20
    #: The page's linked Instagram professional account: its Direct messages are relayed only when it is set.
    instagram_id: str | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("page_access_token", "app_secret", "verify_token", "page_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigurationError(f"MessengerConfig.{name} must be a non-empty string")


@frozen(kw_only=True)
class PageEcho:
    """A message the page itself sent (``is_echo``): ours, or someone answering from the page's inbox."""

    event_id: str
    conversation_id: str
    text: str
    app_id: str | None = None


def parse_webhook(
    data: Mapping[str, Any],
    *,
    source: str = "messenger",
    department_id: str | None = None,
    served: Collection[str] | None = None,
) -> tuple[list[InboundMessage], list[PageEcho]]:
    """(customer messages, page echoes) of a Messenger or Instagram webhook. InvalidRequest when the body as a
    whole is not one; a malformed entry or event is skipped (logged), the others still count.

    ``served``: the page and Instagram account ids the caller serves; entries and events of any other account are
    skipped (one Meta app, one app secret, can serve many pages). None: no check.
    """
    kind = data.get("object")
    if kind not in ("page", "instagram"):
        log.warning("%s: a webhook for object %s, not page or instagram: ignored", source, shown_id(kind))
        return [], []
    platform: Platform = "instagram" if kind == "instagram" else "messenger"
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise InvalidRequest("a Messenger webhook needs an entry list")
    messages: list[InboundMessage] = []
    echoes: list[PageEcho] = []
    for entry in entries:
        if not isinstance(entry, dict):
            skipped(log, source, "an entry[] item", InvalidRequest("entry[] items must be objects"))
            continue
        entry_id = entry.get("id")
        if served is not None and str(entry_id) not in served:
            _not_served(source, platform, entry_id, "webhook entry")
            continue
        standby = list_field(entry, "standby")
        if standby:
            log.info("%s: %d standby event(s) ignored (another app controls the thread)", source, len(standby))
        for event in list_field(entry, "messaging"):
            try:
                found = _event(event, platform, source, department_id, served)
            except InvalidRequest as bad:
                skipped(log, source, "a messaging event", bad)
                continue
            if isinstance(found, PageEcho):
                echoes.append(found)
            elif found is not None:
                messages.append(found)
    return messages, echoes


#: Accounts whose messages were dropped as not served, warned about once each (per process).
_WARNED: set[str] = set()


def _not_served(source: str, platform: Platform, account: Any, what: str) -> None:
    shown = shown_id(account)
    if platform != "instagram":
        log.info("%s: %s for account %s not served here: ignored", source, what, shown)
        return
    key = f"{source}\x1f{account}"
    if key in _WARNED or len(_WARNED) > 10_000:
        log.debug("%s: %s for Instagram account %s not served here: ignored", source, what, shown)
        return
    _WARNED.add(key)
    log.warning(
        "%s: Instagram messages for account %s are not relayed: set MessengerConfig.instagram_id to it to serve "
        "them (logged once per account)",
        source,
        shown,
    )


def _event(
    event: Any, platform: Platform, source: str, department_id: str | None, served: Collection[str] | None
) -> InboundMessage | PageEcho | None:
    if not isinstance(event, dict):
        raise InvalidRequest("messaging[] items must be objects")
    sender = str_field(dict_field(event, "sender"), "id")
    recipient = str_field(dict_field(event, "recipient"), "id")
    if not sender or not recipient:
        raise InvalidRequest("a messaging event needs sender.id and recipient.id")
    message = event.get("message")
    postback = event.get("postback")
    echo = isinstance(message, dict) and message.get("is_echo") is True
    account = sender if echo else recipient
    if served is not None and account not in served:
        _not_served(source, platform, account, "messaging event")
        return None
    if isinstance(message, dict):
        mid = str_field(message, "mid")
        if not mid:
            raise InvalidRequest("a message needs a mid")
        if echo:
            app_id = message.get("app_id")
            return PageEcho(
                event_id=mid,
                conversation_id=f"{platform}:{recipient}",
                text=_echo_text(message),
                app_id=str(app_id) if app_id is not None else None,
            )
        return _customer_message(platform, sender, mid, message, event, source, department_id)
    if isinstance(postback, dict):
        title = str_field(postback, "title") or str_field(postback, "payload")
        mid = str_field(postback, "mid") or f"postback:{sender}:{int_field(event, 'timestamp') or 0}"
        text = title or render.label("button")
        return _inbound(platform, sender, mid, text, (), event, source, department_id)
    kinds = [k for k in event if k not in ("sender", "recipient", "timestamp")]
    receipt = set(kinds) <= {"read", "delivery"}
    log.log(
        logging.DEBUG if receipt else logging.INFO,
        "%s: a messaging event of kind %s ignored",
        source,
        kinds_shown(kinds),
    )
    return None


def _echo_text(message: Mapping[str, Any]) -> str:
    """What the page sent, for the transcript: its text, and a line for each attachment."""
    text = str_field(message, "text") or ""
    if not list_field(message, "attachments") and message.get("sticker_id") is None:
        return text
    try:
        rendered, media = render_message(message)
    except InvalidRequest:
        return text
    return render.join_lines(rendered, *(f"[{media_label(m)}] {m.ref}" for m in media))


_FILE_KINDS = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg", "file": None}
#: Meta's "like" sticker (the thumbs-up button), in its three sizes.
_LIKE_STICKERS = frozenset({369239263222822, 369239343222814, 369239383222810})


def render_message(message: Mapping[str, Any]) -> tuple[str, list[MediaRef]]:
    """(text, files) of a Messenger or Instagram message for the agents: its text, its files, and a readable line
    for what is not a file ("[sticker]", "[location] ...", "[link] ..."); unknown kinds "[unsupported message: x]".

    Raises InvalidRequest when ``attachments`` holds something other than objects.
    """
    lines: list[str | None] = []
    media: list[MediaRef] = []
    sticker = message.get("sticker_id")
    if sticker is not None:
        liked = isinstance(sticker, int) and sticker in _LIKE_STICKERS
        lines.append("[sticker 👍]" if liked else "[sticker]")
    for index, attachment in enumerate(list_field(message, "attachments")):
        if not isinstance(attachment, dict):
            raise InvalidRequest("attachments[] items must be objects")
        kind = str_field(attachment, "type") or "file"
        payload = dict_field(attachment, "payload")
        url = str_field(payload, "url")
        if kind in _FILE_KINDS and url:
            media.append(MediaRef(ref=url, name=f"{kind}-{index + 1}", content_type=_FILE_KINDS[kind]))
        elif kind == "location":
            coordinates = dict_field(payload, "coordinates")
            lines.append(
                render.location_line(coordinates.get("lat"), coordinates.get("long"), name=attachment.get("title"))
            )
        elif kind == "fallback":
            lines.append(render.join_lines("[link]", str_field(attachment, "title"), str_field(attachment, "url")))
        elif url:  # a shared post, a story mention, a reel: a link the agents can open
            lines.append(render.join_lines(render.label(kind.replace("_", " ")), url))
        else:
            lines.append(render.unsupported(kind))
    if message.get("is_unsupported") is True:
        lines.append(render.unsupported())
    reply_to = dict_field(message, "reply_to")
    story = dict_field(reply_to, "story")
    if story:
        lines.insert(0, render.join_lines(render.reply_line(what="a story"), str_field(story, "url")))
    elif reply_to:
        lines.insert(0, render.reply_line())
    text = render.join_lines(*lines, str_field(message, "text"))
    if not text.strip() and not media:
        text = render.unsupported(None if message.get("is_deleted") is not True else "deleted")
    return text, media


def _customer_message(
    platform: Platform,
    sender: str,
    mid: str,
    message: Mapping[str, Any],
    event: Mapping[str, Any],
    source: str,
    department_id: str | None,
) -> InboundMessage:
    text, media = render_message(message)
    return _inbound(platform, sender, mid, text, tuple(media), event, source, department_id)


def _inbound(
    platform: Platform,
    sender: str,
    mid: str,
    text: str,
    media: tuple[MediaRef, ...],
    event: Mapping[str, Any],
    source: str,
    department_id: str | None,
) -> InboundMessage:
    label = "Instagram" if platform == "instagram" else "Messenger"
    user = User(id=f"{platform}:{sender}", name=f"{label} user {sender}", details={"platform": label})
    conversation = Conversation(id=f"{platform}:{sender}", user=user, department_id=department_id, source=source)
    timestamp = int_field(event, "timestamp")
    return InboundMessage(
        event_id=mid,
        conversation=conversation,
        message_id=mid,
        text=text,
        media=media,
        at=timestamp / 1000.0 if timestamp is not None else None,
    )


class MessengerConnector(ChannelConnector):
    """People write to a Facebook page or its Instagram account; agents' replies go back through the Send API."""

    name: ClassVar[str] = "messenger"
    service: ClassVar[str] = SERVICE

    config: MessengerConfig

    def __init__(self, config: MessengerConfig) -> None:
        super().__init__(config, MessengerConfig)
        self._served = frozenset(i for i in (config.page_id, config.instagram_id) if i)

    def __repr__(self) -> str:
        return f"<MessengerConnector page_id={self.config.page_id!r}>"

    def _window_namespace(self) -> str | None:
        return f"{self.name}.window"

    # -- inbound -----------------------------------------------------------------------------------------

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        if method == "GET":
            return meta_handshake(query, self.config.verify_token)
        if method != "POST":
            return HttpResponse.text(405, "expected GET (subscription) or POST (notifications)")
        verify_meta_signature(headers, body, self.config.app_secret)
        messages, echoes = parse_webhook(
            json_object(body), source=self.name, department_id=self.config.department_id, served=self._served
        )
        await self._accept(messages)
        for echo in echoes:
            job = NewJob(
                queue_key=f"{self.name}:{echo.conversation_id}",
                connector=self.name,
                kind=ECHO_JOB,
                payload=converter.unstructure(echo),
            )
            await self.context.accept_inbound(self.name, echo.event_id, [job])
        return HttpResponse.text(200, "ok")

    async def _process(self, job: Job) -> Batch | None:
        if job.kind != ECHO_JOB:
            return await super()._process(job)
        echo = converter.structure(job.payload, PageEcho)
        # Echo jobs queue behind the delivery that caused them, so our own messages are known by now.
        if await self.context.store.get(f"{self.name}.mids", echo.event_id) is not None:
            return None
        state = await self.context.conversation_state(echo.conversation_id)
        if not echo.text or state is None:
            return None
        # Someone answered from the page's own inbox: the hub keeps it in the transcript and mirrors it to Slack.
        job_for_hub = self.context.hub_job(
            "agent_message",
            echo.conversation_id,
            {
                "conversation": converter.unstructure(state.conversation),
                "message": converter.unstructure(Message(id=echo.event_id, text=echo.text)),
                "agent": None,
            },
        )
        return Batch(jobs=[job_for_hub])

    async def _enrich(self, conversation: Conversation) -> Conversation:
        # Webhooks carry only the person's id: the name comes from the profile API, cached in the store.
        namespace = f"{self.name}.profiles"
        cached = await self.context.store.get(namespace, conversation.id)
        if cached is not None and isinstance(cached.value, dict):
            profile: dict[str, Any] = cached.value
        else:
            platform, person = self._peer(conversation, ("messenger", "instagram"))
            fields = "name,username" if platform == "instagram" else "first_name,last_name,profile_pic"
            try:
                answer = await graph_call(
                    self.http,
                    SERVICE,
                    "profile",
                    "GET",
                    f"{self._api}/{person}",
                    self.config.page_access_token,
                    params={"fields": fields},
                )
            except (PermissionDenied, NotFound, GraphError) as exc:
                log.info("%s: no profile for %s (%s)", self.name, conversation.id, exc)
                return conversation
            first = str(answer.get("first_name") or "")
            last = str(answer.get("last_name") or "")
            profile = {
                "name": str(answer.get("name") or f"{first} {last}".strip()),
                "username": answer.get("username"),
                "avatar_url": answer.get("profile_pic"),
            }
            await self.context.store.commit(
                Batch(puts=[Put(namespace=namespace, key=conversation.id, value=profile)]), now=self.context.now()
            )
        user = conversation.user
        details = dict(user.details)
        if isinstance(profile.get("username"), str):
            details["instagram"] = f"@{profile['username']}"
        user = evolve(
            user,
            name=str(profile.get("name") or user.name),
            avatar_url=profile.get("avatar_url") if isinstance(profile.get("avatar_url"), str) else user.avatar_url,
            details=details,
        )
        return evolve(conversation, user=user)

    async def _fetch(self, media: MediaRef) -> bytes | None:
        # Attachment URLs are public, short-lived CDN links: no token, and only public https hosts.
        return await self.http.fetch(media.ref, limit=self.max_file_bytes, trusted=[self._api])

    # -- outbound ----------------------------------------------------------------------------------------

    async def _send_reply(self, event: DeliverReply) -> None:
        conversation = event.conversation
        platform, recipient = self._peer(conversation, ("messenger", "instagram"))
        message = event.reply.message
        last = await self.last_inbound(conversation.id)
        tagged = last is None or self.context.now() - last > WINDOW_SECONDS - 60.0
        parts: list[Any] = [*chunk_text(message.text, TEXT_LIMIT), *message.attachments]
        done = await self._parts_done(conversation.id, message.id)
        for index, part in enumerate(parts):
            if index < done:
                continue
            envelope: dict[str, Any] = {"recipient": {"id": recipient}, "messaging_type": "RESPONSE"}
            if tagged:
                # Past 24 hours a human agent may still answer for 7 days, with this tag.
                envelope.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
            try:
                if isinstance(part, str):
                    answer = await self._send(envelope, {"text": part})
                else:
                    answer = await self._send_attachment(envelope, part, instagram=platform == "instagram")
            except GraphError as error:
                if error.subcode == OUTSIDE_WINDOW:
                    raise PermissionDenied(
                        f"conversation {conversation.id!r}: the person last wrote more than 7 days ago; Messenger "
                        "accepts no reply until they write again",
                        code=error.code,
                        service=SERVICE,
                    ) from None
                raise
            mid = str(answer.get("message_id") or "")
            if mid:
                await self.context.store.commit(
                    Batch(puts=[Put(namespace=f"{self.name}.mids", key=mid, value={"c": conversation.id})]),
                    now=self.context.now(),
                )
            await self._part_sent(conversation.id, message.id, index + 1, mid or None)

    async def _send(self, envelope: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
        return await graph_call(
            self.http,
            SERVICE,
            "send",
            "POST",
            f"{self._api}/{self.config.page_id}/messages",
            self.config.page_access_token,
            json={**envelope, "message": dict(message)},
        )

    async def _send_attachment(
        self, envelope: Mapping[str, Any], attachment: Attachment, *, instagram: bool
    ) -> dict[str, Any]:
        content_type = attachment.content_type or ""
        kind = next((k for k in ("image", "video", "audio") if content_type.startswith(k + "/")), "file")
        if attachment.url:
            payload = {"attachment": {"type": kind, "payload": {"url": attachment.url, "is_reusable": False}}}
            return await self._send(envelope, payload)
        if attachment.content is None or instagram:
            # Instagram takes attachments by URL only: name the file instead of dropping it.
            return await self._send(envelope, {"text": f"[{attachment.name}]"})
        data = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in envelope.items()}
        data["message"] = json.dumps({"attachment": {"type": kind, "payload": {"is_reusable": False}}})
        return await graph_call(
            self.http,
            SERVICE,
            "send",
            "POST",
            f"{self._api}/{self.config.page_id}/messages",
            self.config.page_access_token,
            data=data,
            files={"filedata": (attachment.name, attachment.content, content_type or "application/octet-stream")},
        )
