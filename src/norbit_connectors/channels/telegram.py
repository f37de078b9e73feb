"""Telegram (Bot API): customers write to your bot; agents' replies go back as the bot.

Set the webhook once with :meth:`TelegramConnector.set_webhook` (it registers ``secret_token``, which Telegram
then sends on every update as ``X-Telegram-Bot-Api-Secret-Token``), and route that URL to
:meth:`TelegramConnector.handle_http`.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from .._connector import HttpResponse
from .._events import DeliverReply
from .._models import Attachment, Conversation, User
from ..exceptions import (
    ConfigurationError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransportError,
)
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
    str_field,
)
from ._http import header, json_object, same_secret

__all__ = ["TelegramConfig", "TelegramConnector", "parse_update"]

SERVICE = "telegram"
log = logging.getLogger("norbit_connectors.channels.telegram")
#: ``User.details`` key of a business account chat's connection id (replies are sent through it).
BUSINESS_DETAIL = "telegram_business_connection"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
PHOTO_UPLOAD_LIMIT = 10 << 20
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _check_secret_token(_: Any, __: Any, value: str) -> None:
    if not 1 <= len(value) <= 256 or not set(value) <= _SECRET_CHARS:
        raise ConfigurationError("TelegramConfig.secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")


def _check_bot_token(_: Any, __: Any, value: str) -> None:
    if ":" not in value or "/" in value or not value.strip():
        raise ConfigurationError("TelegramConfig.bot_token must be the token BotFather gave, like '123456:ABC-DEF...'")


@frozen(kw_only=True)
class TelegramConfig:
    """``bot_token`` from @BotFather; ``secret_token``: 1-256 of ``A-Za-z0-9_-``, checked on every webhook."""

    bot_token: str = field(repr=False, validator=_check_bot_token)
    secret_token: str = field(repr=False, validator=_check_secret_token)
    department_id: str | None = None
    base_url: str = "https://api.telegram.org"
    max_file_bytes: int = 20 << 20  # the Bot API serves files up to 20 MB to bots


#: Keys of a Message that say something about it rather than being its content.
_ENVELOPE = frozenset(
    [
        "message_id",
        "message_thread_id",
        "from",
        "sender_chat",
        "sender_boost_count",
        "sender_business_bot",
        "date",
        "business_connection_id",
        "chat",
        "forward_origin",
        "is_topic_message",
        "is_automatic_forward",
        "reply_to_message",
        "external_reply",
        "quote",
        "reply_to_story",
        "via_bot",
        "edit_date",
        "has_protected_content",
        "is_from_offline",
        "media_group_id",
        "author_signature",
        "entities",
        "caption_entities",
        "link_preview_options",
        "effect_id",
        "show_caption_above_media",
        "has_media_spoiler",
        "reply_markup",
        "paid_star_count",
        "text",
        "caption",
        # Before Bot API 7.0, forwards carried these instead of forward_origin.
        "forward_from",
        "forward_from_chat",
        "forward_from_message_id",
        "forward_signature",
        "forward_sender_name",
        "forward_date",
        "is_paid_post",
    ]
)


def _file(message: Mapping[str, Any], key: str, name: str, content_type: str | None) -> MediaRef | None:
    item = dict_field(message, key)
    file_id = str_field(item, "file_id")
    if not file_id:
        return None
    return MediaRef(
        ref=file_id,
        name=str_field(item, "file_name") or name,
        content_type=str_field(item, "mime_type") or content_type,
        size=int_field(item, "file_size"),
    )


def render_message(message: Mapping[str, Any], message_id: int) -> tuple[str, list[MediaRef]]:
    """(text, files) of a Telegram message for the agents: its text or caption, its files, and a readable line for
    every kind of content that is not text ("[voice message, 0:07]", "[location] ...", "[sticker 😀]")."""
    text = str_field(message, "text") or str_field(message, "caption") or ""
    media: list[MediaRef] = []
    line: str | None = None
    photos = [p for p in list_field(message, "photo") if isinstance(p, dict) and str_field(p, "file_id")]
    if photos:
        largest = max(photos, key=lambda p: (int_field(p, "file_size") or 0, (int_field(p, "width") or 0)))
        media.append(
            MediaRef(
                ref=str(largest["file_id"]),
                name=f"photo-{message_id}.jpg",
                content_type="image/jpeg",
                size=int_field(largest, "file_size"),
            )
        )
    voice = dict_field(message, "voice")
    audio = dict_field(message, "audio")
    video = dict_field(message, "video")
    note = dict_field(message, "video_note")
    sticker = dict_field(message, "sticker")
    animation = dict_field(message, "animation")
    venue = dict_field(message, "venue")
    location = dict_field(message, "location")
    contact = dict_field(message, "contact")
    poll = dict_field(message, "poll")
    dice = dict_field(message, "dice")
    if "voice" in message:
        line = render.label("voice message", render.duration(voice.get("duration")))
        media.append(_file(message, "voice", f"voice-{message_id}.ogg", "audio/ogg") or _missing)
    elif "audio" in message:
        who = " - ".join(t for t in (str_field(audio, "performer"), str_field(audio, "title")) if t)
        line = render.label("audio", who, render.duration(audio.get("duration")))
        media.append(_file(message, "audio", f"audio-{message_id}.mp3", "audio/mpeg") or _missing)
    elif "video_note" in message:
        line = render.label("video message", render.duration(note.get("duration")))
        media.append(_file(message, "video_note", f"video-message-{message_id}.mp4", "video/mp4") or _missing)
    elif "animation" in message:  # also sent as "document", for old clients: one file is enough
        line = render.label("animation", render.duration(animation.get("duration")))
        media.append(_file(message, "animation", f"animation-{message_id}.mp4", "video/mp4") or _missing)
    elif "video" in message:
        line = render.label("video", render.duration(video.get("duration")))
        media.append(_file(message, "video", f"video-{message_id}.mp4", "video/mp4") or _missing)
    elif "sticker" in message:
        line = "[sticker" + (f" {str_field(sticker, 'emoji')}" if str_field(sticker, "emoji") else "") + "]"
        if sticker.get("is_animated") is not True and sticker.get("is_video") is not True:
            media.append(_file(message, "sticker", f"sticker-{message_id}.webp", "image/webp") or _missing)
    elif "venue" in message:  # also sent as "location"
        place = dict_field(venue, "location")
        line = render.location_line(
            place.get("latitude"),
            place.get("longitude"),
            kind="venue",
            name=venue.get("title"),
            address=venue.get("address"),
        )
    elif "location" in message:
        live = "live location" if location.get("live_period") is not None else "location"
        line = render.location_line(location.get("latitude"), location.get("longitude"), kind=live)
    elif "contact" in message:
        name = " ".join(t for t in (str_field(contact, "first_name"), str_field(contact, "last_name")) if t)
        line = render.person_line(name, [contact.get("phone_number")])
    elif "poll" in message:
        options = [o.get("text") for o in list_field(poll, "options") if isinstance(o, dict)]
        line = render.poll_line(poll.get("question"), options, kind="quiz" if poll.get("type") == "quiz" else "poll")
    elif "dice" in message:
        value = int_field(dice, "value")
        shown = " ".join(str(x) for x in (str_field(dice, "emoji") or "🎲", value) if x is not None)
        line = f"[dice {shown}]"
    elif "document" in message:
        media.append(_file(message, "document", f"document-{message_id}", None) or _missing)
    elif not photos:
        # A kind not rendered here (a game, paid media, a story...) is named, even when it has a caption.
        other = next((k for k in message if k not in _ENVELOPE), None)
        if other is not None or not text:
            line = render.unsupported(other)
    files = [m for m in media if m is not _missing]
    if not text.strip() and not files and line is None:
        line = "[empty message]" if text else render.unsupported()
    return render.join_lines(*context_lines(message), line, text), files


def context_lines(message: Mapping[str, Any]) -> list[str]:
    """``[forwarded from X]`` and ``[reply to: ...]`` lines for a forwarded message or a reply."""
    lines: list[str] = []
    origin = message.get("forward_origin")
    if isinstance(origin, dict):
        lines.append(render.forwarded_line(_origin_name(origin)))
    quote = dict_field(message, "quote")
    replied = dict_field(message, "reply_to_message") or dict_field(message, "external_reply")
    if quote or replied:
        quoted = str_field(quote, "text") or str_field(replied, "text") or str_field(replied, "caption")
        lines.append(render.reply_line(quoted))
    elif isinstance(message.get("reply_to_story"), dict):
        lines.append(render.reply_line(what="a story"))
    return lines


def _origin_name(origin: Mapping[str, Any]) -> str | None:
    user = dict_field(origin, "sender_user")
    if user:
        name = " ".join(t for t in (str_field(user, "first_name"), str_field(user, "last_name")) if t)
        return name or (f"@{str_field(user, 'username')}" if str_field(user, "username") else None)
    chat = dict_field(origin, "sender_chat") or dict_field(origin, "chat")
    return str_field(origin, "sender_user_name") or str_field(chat, "title")


_missing = MediaRef(ref="", name="")
#: The updates that carry a customer's message (a business account's chats are relayed like the bot's own).
_RELAYED = ("message", "business_message", "edited_message", "edited_business_message")


def parse_update(
    data: Mapping[str, Any], *, source: str = "telegram", department_id: str | None = None
) -> InboundMessage | None:
    """The customer message in a Telegram update (every kind: a voice message or a sticker becomes a readable
    line), None for updates that are not a customer's new message (edits, group chats, bots, callbacks).

    Raises InvalidRequest for an update that is not shaped like one.
    """
    update_id = int_field(data, "update_id")
    if update_id is None:
        raise InvalidRequest("a Telegram update needs an integer update_id")
    kind = next((k for k in _RELAYED if k in data), None)
    if kind is None:
        kinds = kinds_shown(k for k in data if k != "update_id")
        log.info("%s: update %s of kind %s ignored", source, update_id, kinds)
        return None  # channel posts, callbacks, member updates: nothing for the agents
    message = data[kind]
    if not isinstance(message, dict):
        raise InvalidRequest(f"update.{kind} must be an object")
    chat = dict_field(message, "chat")
    chat_id = int_field(chat, "id")
    message_id = int_field(message, "message_id")
    if chat_id is None or message_id is None:
        raise InvalidRequest("update.message needs message_id and chat.id")
    if chat.get("type", "private") != "private":
        # The bot serves one customer per private chat; groups and channels are not conversations.
        log.info("%s: update %s from a %s chat: not relayed", source, update_id, kinds_shown([str(chat.get("type"))]))
        return None
    sender = dict_field(message, "from")
    if sender.get("is_bot") is True:
        log.info("%s: update %s sent by a bot: not relayed", source, update_id)
        return None
    business = str_field(message, "business_connection_id") if "business" in kind else None
    if "business" in kind and int_field(sender, "id") != chat_id:
        # In a business account's private chat the customer's id is the chat's: this one the account itself sent.
        log.info("%s: update %s sent by the business account: not relayed", source, update_id)
        return None
    text, media = render_message(message, message_id)
    shown_message_id = str(message_id)
    if kind.startswith("edited_"):
        text = render.join_lines("[edited]", text)
        shown_message_id = f"{message_id}:edited:{int_field(message, 'edit_date') or update_id}"
    user_id = int_field(sender, "id")
    first = str_field(sender, "first_name") or ""
    last = str_field(sender, "last_name") or ""
    username = str_field(sender, "username")
    name = f"{first} {last}".strip() or (f"@{username}" if username else f"Telegram user {user_id or chat_id}")
    details: dict[str, str] = {}
    if username:
        details["telegram"] = f"@{username}"
    language = str_field(sender, "language_code")
    if language:
        details["language"] = language
    if business:
        details[BUSINESS_DETAIL] = business  # replies go back through the business account
    user = User(id=f"telegram:{user_id if user_id is not None else chat_id}", name=name, details=details)
    conversation = Conversation(id=f"telegram:{chat_id}", user=user, department_id=department_id, source=source)
    at = int_field(message, "date")
    return InboundMessage(
        event_id=str(update_id),
        conversation=conversation,
        message_id=shown_message_id,
        text=text,
        media=tuple(media),
        at=float(at) if at is not None else None,
    )


class TelegramConnector(ChannelConnector):
    """Customers write to a Telegram bot; agents' Slack replies go back through ``sendMessage`` and friends."""

    name: ClassVar[str] = "telegram"
    service: ClassVar[str] = SERVICE

    config: TelegramConfig

    def __init__(self, config: TelegramConfig) -> None:
        super().__init__(config, TelegramConfig)

    def __repr__(self) -> str:
        return f"<TelegramConnector base_url={self._api!r}>"

    # -- Bot API -----------------------------------------------------------------------------------------

    async def call(self, method: str, *, files: Mapping[str, tuple[str, bytes, str]] | None = None, **args: Any) -> Any:
        """Call a Bot API method and return its ``result``; errors become NorbitErrors."""
        url = f"{self._api}/bot{self.config.bot_token}/{method}"
        if files:
            data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items() if v is not None}
            response = await self.http.request("POST", url, data=data, files=dict(files))
        else:
            response = await self.http.request("POST", url, json={k: v for k, v in args.items() if v is not None})
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("ok") is True:
            return answer.get("result")
        raise _error(method, response.status_code, answer if isinstance(answer, dict) else {})

    async def set_webhook(self, url: str, *, drop_pending_updates: bool = False) -> None:
        """Point the bot's updates at ``url`` (HTTPS), signed with the configured ``secret_token``."""
        await self.call(
            "setWebhook",
            url=url,
            secret_token=self.config.secret_token,
            allowed_updates=list(_RELAYED),
            drop_pending_updates=drop_pending_updates,
        )

    # -- inbound -----------------------------------------------------------------------------------------

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        if method != "POST":
            return HttpResponse.text(405, "Telegram sends updates with POST")
        if not same_secret(header(headers, "X-Telegram-Bot-Api-Secret-Token"), self.config.secret_token):
            raise InvalidRequest("wrong or missing X-Telegram-Bot-Api-Secret-Token", status=401)
        update = parse_update(json_object(body), source=self.name, department_id=self.config.department_id)
        if update is not None:
            await self._accept([update])
        return HttpResponse.text(200, "ok")

    async def _fetch(self, media: MediaRef) -> bytes | None:
        info = await self.call("getFile", file_id=media.ref)
        path = info.get("file_path") if isinstance(info, dict) else None
        if not isinstance(path, str) or not path:
            raise RemoteError("telegram: getFile gave no file_path", code="no_file_path", service=SERVICE)
        size = info.get("file_size")
        if isinstance(size, int) and size > self.max_file_bytes:
            return None
        url = f"{self._api}/file/bot{self.config.bot_token}/{urllib.parse.quote(path)}"
        return await self.http.fetch(url, limit=self.max_file_bytes, trusted=[self._api])

    # -- outbound ----------------------------------------------------------------------------------------

    async def _send_reply(self, event: DeliverReply) -> None:
        _, chat_id = self._peer(event.conversation, ("telegram",))
        business = event.conversation.user.details.get(BUSINESS_DETAIL)
        via: dict[str, Any] = {"business_connection_id": business} if business else {}
        message = event.reply.message
        parts: list[tuple[str, Any]] = [("text", piece) for piece in chunk_text(message.text, TEXT_LIMIT)]
        parts.extend(("file", attachment) for attachment in message.attachments)
        done = await self._parts_done(event.conversation.id, message.id)
        for index, (kind, part) in enumerate(parts):
            if index < done:
                continue
            if kind == "text":
                result = await self.call("sendMessage", chat_id=chat_id, text=part, **via)
            else:
                result = await self._send_file(chat_id, part, via)
            sent_id = result.get("message_id") if isinstance(result, dict) else None
            await self._part_sent(event.conversation.id, message.id, index + 1, str(sent_id))

    async def _send_file(self, chat_id: str, attachment: Attachment, via: Mapping[str, Any]) -> Any:
        content_type = attachment.content_type or mimetypes.guess_type(attachment.name)[0] or ""
        is_photo = content_type in ("image/jpeg", "image/png", "image/webp", "image/gif")
        if attachment.content is not None:
            if is_photo and len(attachment.content) <= PHOTO_UPLOAD_LIMIT:
                method, field_name = "sendPhoto", "photo"
            else:
                method, field_name = "sendDocument", "document"
            upload = (attachment.name or "file", attachment.content, content_type or "application/octet-stream")
            return await self.call(method, files={field_name: upload}, chat_id=chat_id, **via)
        if attachment.url:
            if is_photo:
                return await self.call("sendPhoto", chat_id=chat_id, photo=attachment.url, **via)
            return await self.call("sendDocument", chat_id=chat_id, document=attachment.url, **via)
        # Neither bytes nor a link: say what was attached rather than drop it silently.
        return await self.call("sendMessage", chat_id=chat_id, text=f"[{attachment.name}]", **via)


def _error(method: str, status: int, answer: Mapping[str, Any]) -> Exception:
    code = answer.get("error_code")
    code = code if isinstance(code, int) else status
    description = str(answer.get("description") or f"HTTP {status}")
    text = f"telegram {method}: {description}"
    parameters = answer.get("parameters")
    if code == 429 or status == 429:
        retry = parameters.get("retry_after") if isinstance(parameters, dict) else None
        wait = float(retry) if isinstance(retry, int | float) and not isinstance(retry, bool) else 1.0
        return RateLimited(text, retry_after=wait, code="429", service=SERVICE)
    if status >= 500 or code >= 500:
        return TransportError(text, code=str(code), service=SERVICE)
    if code == 401 or status == 401:
        return PermissionDenied(text, code="401", service=SERVICE)
    lowered = description.lower()
    if code == 403 or "chat not found" in lowered or "user is deactivated" in lowered:
        # Blocked by the user, kicked, deleted account: the chat is gone for the bot.
        return NotFound(text, code=str(code), service=SERVICE)
    if code == 404 and "not found" in lowered and method != "getFile":
        return PermissionDenied(text + " (is the bot token right?)", code="404", service=SERVICE)
    return RemoteError(text, code=str(code), service=SERVICE)
