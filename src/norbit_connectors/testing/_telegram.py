"""A strict local Telegram Bot API: the bot's side over real HTTP, and customers who write to the bot.

The bot token is part of every URL (``/bot<token>/<method>``, files at ``/file/bot<token>/<path>``); a wrong one is
answered ``401 Unauthorized`` as Telegram does. Errors have Telegram's shape ``{"ok": false, "error_code": ...,
"description": ...}``. Customers' messages become updates signed with the webhook secret token, ready to deliver.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ..exceptions import UsageError
from ._webhook import LoopbackEmulator, Request, Response, Upload, Webhook

__all__ = ["SentMessage", "TelegramCustomer", "TelegramEmulator"]

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@attrs.frozen(kw_only=True)
class TelegramCustomer:
    """A Telegram user in a private chat with the bot (chat id == user id, as in Telegram)."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @property
    def chat_id(self) -> int:
        return self.id


@attrs.frozen(kw_only=True)
class SentMessage:
    """What the bot sent: ``kind`` is "text", "photo" or "document"; ``content`` the uploaded or fetched bytes,
    ``url`` when sent by link."""

    message_id: int
    chat_id: int
    kind: str
    text: str | None = None
    content: bytes | None = attrs.field(default=None, repr=False)
    url: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    business_connection_id: str | None = None  # sent on behalf of a connected business account


@attrs.frozen(kw_only=True)
class _File:
    file_id: str
    unique_id: str
    path: str
    content: bytes = attrs.field(repr=False)


class _Failure(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


class _MessageKinds:
    """The customer's side for every kind of Telegram message beyond text, photos and documents, each with the Bot
    API's own fields (``Voice``, ``Audio``, ``Video``, ``VideoNote``, ``Animation``, ``Sticker``, ``Location``,
    ``Venue``, ``Contact``, ``Poll``, ``Dice``)."""

    def _message_update(self, customer: TelegramCustomer, fields: Mapping[str, Any]) -> Webhook:
        raise NotImplementedError

    def _store_file(self, content: bytes, folder: str, extension: str) -> _File:
        raise NotImplementedError

    def send_message(self, customer: TelegramCustomer, fields: Mapping[str, Any]) -> Webhook:
        """The customer sends a message with any ``fields`` (beside message_id, from, chat and date)."""
        return self._message_update(customer, fields)

    def _file_fields(self, content: bytes, folder: str, extension: str, **extra: Any) -> dict[str, Any]:
        stored = self._store_file(content, folder, extension)
        return {"file_id": stored.file_id, "file_unique_id": stored.unique_id, "file_size": len(content), **extra}

    def send_voice(
        self, customer: TelegramCustomer, content: bytes, *, duration: int, caption: str | None = None
    ) -> Webhook:
        """A voice message (OGG/Opus), ``duration`` seconds long."""
        voice = self._file_fields(content, "voice", "oga", duration=duration, mime_type="audio/ogg")
        return self._message_update(customer, {"voice": voice, **({"caption": caption} if caption else {})})

    def send_audio(
        self,
        customer: TelegramCustomer,
        content: bytes,
        *,
        duration: int,
        performer: str | None = None,
        title: str | None = None,
        file_name: str = "track.mp3",
    ) -> Webhook:
        """A music file."""
        extra = {k: v for k, v in (("performer", performer), ("title", title)) if v is not None}
        audio = self._file_fields(
            content, "music", "mp3", duration=duration, file_name=file_name, mime_type="audio/mpeg", **extra
        )
        return self._message_update(customer, {"audio": audio})

    def send_video(
        self, customer: TelegramCustomer, content: bytes, *, duration: int, caption: str | None = None
    ) -> Webhook:
        """A video file."""
        video = self._file_fields(
            content, "videos", "mp4", duration=duration, width=640, height=360, mime_type="video/mp4"
        )
        return self._message_update(customer, {"video": video, **({"caption": caption} if caption else {})})

    def send_video_note(self, customer: TelegramCustomer, content: bytes, *, duration: int) -> Webhook:
        """A round video message."""
        note = self._file_fields(content, "video_notes", "mp4", duration=duration, length=240)
        return self._message_update(customer, {"video_note": note})

    def send_animation(self, customer: TelegramCustomer, content: bytes, *, duration: int = 3) -> Webhook:
        """A GIF (as Telegram sends them: an MP4 in ``animation``, the same file again in ``document``)."""
        animation = self._file_fields(
            content,
            "animations",
            "mp4",
            duration=duration,
            width=320,
            height=240,
            file_name="animation.gif.mp4",
            mime_type="video/mp4",
        )
        document = {k: animation[k] for k in ("file_id", "file_unique_id", "file_size", "file_name", "mime_type")}
        return self._message_update(customer, {"animation": animation, "document": document})

    def send_sticker(
        self, customer: TelegramCustomer, content: bytes, *, emoji: str | None = "😀", animated: bool = False
    ) -> Webhook:
        """A sticker: a WEBP image, or (``animated``) a TGS animation."""
        sticker = self._file_fields(
            content,
            "stickers",
            "tgs" if animated else "webp",
            width=512,
            height=512,
            set_name="NorbitStickers",
            is_animated=animated,
            is_video=False,
            type="regular",
            **({"emoji": emoji} if emoji else {}),
        )
        return self._message_update(customer, {"sticker": sticker})

    def send_location(
        self, customer: TelegramCustomer, latitude: float, longitude: float, *, live_period: int | None = None
    ) -> Webhook:
        """A location (a live one with ``live_period``)."""
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if live_period is not None:
            location.update(live_period=live_period, horizontal_accuracy=15.0)
        return self._message_update(customer, {"location": location})

    def send_venue(
        self, customer: TelegramCustomer, latitude: float, longitude: float, *, title: str, address: str
    ) -> Webhook:
        """A venue (Telegram sends its location in ``location`` too)."""
        location = {"latitude": latitude, "longitude": longitude}
        venue = {"location": location, "title": title, "address": address}
        return self._message_update(customer, {"venue": venue, "location": location})

    def send_contact(
        self, customer: TelegramCustomer, phone_number: str, first_name: str, *, last_name: str | None = None
    ) -> Webhook:
        """A shared contact."""
        contact = {"phone_number": phone_number, "first_name": first_name}
        if last_name is not None:
            contact["last_name"] = last_name
        return self._message_update(customer, {"contact": contact})

    def send_poll(
        self, customer: TelegramCustomer, question: str, options: list[str], *, quiz: bool = False
    ) -> Webhook:
        """A poll (or a quiz) the customer created in the chat."""
        poll = {
            "id": str(5000000000000000000 + len(question)),
            "question": question,
            "options": [{"text": option, "voter_count": 0} for option in options],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "quiz" if quiz else "regular",
            "allows_multiple_answers": False,
        }
        if quiz:
            poll["correct_option_id"] = 0
        return self._message_update(customer, {"poll": poll})

    def send_dice(self, customer: TelegramCustomer, *, emoji: str = "🎲", value: int = 4) -> Webhook:
        """An animated emoji with a random value (a die, darts, a basketball...)."""
        return self._message_update(customer, {"dice": {"emoji": emoji, "value": value}})


class TelegramEmulator(LoopbackEmulator, _MessageKinds):
    """A bot on a local Telegram. ``base_url`` goes in ``TelegramConfig.base_url``; ``bot_token`` and
    ``secret_token`` too."""

    thread_name = "telegram-emulator"

    def __init__(
        self,
        *,
        bot_token: str | None = None,
        secret_token: str | None = None,
        clock: Callable[[], float] | None = None,
        bot_username: str = "norbit_bot",
    ) -> None:
        super().__init__(clock)
        self.bot_id = 7000000001
        self.bot_token = bot_token or f"{self.bot_id}:{secrets.token_urlsafe(26)}"
        self.secret_token = secret_token or secrets.token_urlsafe(24).replace("=", "")
        self.bot_username = bot_username
        self._customers: dict[int, TelegramCustomer] = {}
        self._blocked: set[int] = set()
        self._files: dict[str, _File] = {}
        self._sent: list[SentMessage] = []
        self._calls: list[str] = []
        self._ids = itertools.count(1)
        self._updates = itertools.count(100000001)
        self._user_ids = itertools.count(500000001)
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None

    def __repr__(self) -> str:
        return f"<TelegramEmulator bot @{self.bot_username}>"

    @property
    def base_url(self) -> str:
        return self.root_url

    # -- the customers' side -----------------------------------------------------------------------------

    def add_customer(
        self,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
    ) -> TelegramCustomer:
        """A user who opened a private chat with the bot."""
        with self._lock:
            customer = TelegramCustomer(
                id=next(self._user_ids),
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
            self._customers[customer.id] = customer
            return customer

    def block_bot(self, customer: TelegramCustomer) -> None:
        """The customer blocks the bot: sending to them fails with 403."""
        with self._lock:
            self._blocked.add(customer.id)

    def send_text(self, customer: TelegramCustomer, text: str) -> Webhook:
        """The customer writes ``text``: the update Telegram posts to the webhook."""
        return self._message_update(customer, {"text": text})

    def send_photo(self, customer: TelegramCustomer, content: bytes, *, caption: str | None = None) -> Webhook:
        """The customer sends a photo; Telegram offers it in three sizes (the largest is ``content``)."""
        sizes = []
        for scale, blob in ((90, content[:16]), (320, content[: max(1, len(content) // 2)]), (1280, content)):
            stored = self._store_file(blob, "photos", "jpg")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.unique_id,
                    "file_size": len(blob),
                    "width": scale,
                    "height": scale * 3 // 4,
                }
            )
        fields: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            fields["caption"] = caption
        return self._message_update(customer, fields)

    def send_document(
        self,
        customer: TelegramCustomer,
        content: bytes,
        *,
        file_name: str,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> Webhook:
        """The customer sends a file."""
        stored = self._store_file(content, "documents", file_name.rsplit(".", 1)[-1] if "." in file_name else "bin")
        fields: dict[str, Any] = {
            "document": {
                "file_id": stored.file_id,
                "file_unique_id": stored.unique_id,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": len(content),
            }
        }
        if caption is not None:
            fields["caption"] = caption
        return self._message_update(customer, fields)

    def update(self, payload: Any, *, secret_token: str | None = None) -> Webhook:
        """Any body, sent as Telegram sends updates (to test what the app does with odd ones)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self._webhook(body, payload, secret_token)

    def _message_update(self, customer: TelegramCustomer, fields: Mapping[str, Any]) -> Webhook:
        with self._lock:
            if customer.id not in self._customers:
                raise UsageError("unknown customer: create them with add_customer()")
            sender: dict[str, Any] = {"id": customer.id, "is_bot": False, "first_name": customer.first_name}
            chat: dict[str, Any] = {"id": customer.id, "type": "private", "first_name": customer.first_name}
            for key in ("last_name", "username"):
                value = getattr(customer, key)
                if value is not None:
                    sender[key] = chat[key] = value
            if customer.language_code is not None:
                sender["language_code"] = customer.language_code
            message = {"message_id": next(self._ids), "from": sender, "chat": chat, "date": int(self.now())}
            message.update(fields)
            update = {"update_id": next(self._updates), "message": message}
        return self.update(update)

    def _webhook(self, body: bytes, payload: Any, secret_token: str | None) -> Webhook:
        headers = {"Content-Type": "application/json"}
        token = secret_token if secret_token is not None else (self.webhook_secret or self.secret_token)
        if token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        return Webhook(body=body, headers=headers, payload=payload)

    def _store_file(self, content: bytes, folder: str, extension: str) -> _File:
        with self._lock:
            digest = hashlib.sha256(content + str(len(self._files)).encode()).hexdigest()
            stored = _File(
                file_id=f"AgAC{digest[:40]}",
                unique_id=f"AQAD{digest[40:52]}",
                path=f"{folder}/file_{len(self._files)}.{extension}",
                content=content,
            )
            self._files[stored.file_id] = stored
            return stored

    # -- what the bot did --------------------------------------------------------------------------------

    @property
    def sent(self) -> list[SentMessage]:
        """Everything the bot sent, oldest first."""
        with self._lock:
            return list(self._sent)

    def sent_to(self, customer: TelegramCustomer) -> list[SentMessage]:
        return [m for m in self.sent if m.chat_id == customer.id]

    @property
    def calls(self) -> list[str]:
        """The Bot API methods called, in order (including failed calls)."""
        with self._lock:
            return list(self._calls)

    # -- the Bot API -------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/file/bot"):
            return self._download(path[len("/file/bot") :], request)
        if not path.startswith("/bot"):
            return _error(404, "Not Found")
        token, _, method = path[len("/bot") :].partition("/")
        if token != self.bot_token:
            return _error(401, "Unauthorized")
        with self._lock:
            self._calls.append(method)
        handler = _METHODS.get(method.lower())
        if handler is None:
            return _error(404, "Not Found")
        if request.malformed is not None:
            return _error(400, f"Bad Request: {request.malformed}")
        fault = self._take_fault(method)
        if fault is not None:
            if fault.status == 429:
                return _error(429, f"Too Many Requests: retry after {fault.retry_after}", fault.retry_after)
            return _error(fault.status, "Internal Server Error")
        args = dict(request.fields)
        args.update(request.query)
        try:
            with self._lock:
                result = handler(self, args, request.files)
        except _Failure as failure:
            return _error(failure.code, failure.description, failure.retry_after)
        return Response.json(200, {"ok": True, "result": result})

    def _download(self, rest: str, request: Request) -> Response:
        token, _, file_path = rest.partition("/")
        if token != self.bot_token:
            return _error(401, "Unauthorized")
        with self._lock:
            for stored in self._files.values():
                if stored.path == file_path:
                    return Response(status=200, body=stored.content, content_type="application/octet-stream")
        return _error(404, "Not Found")

    def _chat(self, args: Mapping[str, Any]) -> int:
        raw = args.get("chat_id")
        if raw is None or raw == "":
            raise _Failure(400, "Bad Request: chat_id is empty")
        try:
            chat_id = int(str(raw))
        except ValueError:
            raise _Failure(400, "Bad Request: chat not found") from None
        if chat_id not in self._customers:
            raise _Failure(400, "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise _Failure(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _record(self, **fields: Any) -> dict[str, Any]:
        sent = SentMessage(message_id=next(self._ids), **fields)
        self._sent.append(sent)
        return {
            "message_id": sent.message_id,
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "norbit", "username": self.bot_username},
            "chat": {"id": sent.chat_id, "type": "private"},
            "date": int(self.now()),
            **({"text": sent.text} if sent.kind == "text" else {}),
        }

    def _get_me(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        return {"id": self.bot_id, "is_bot": True, "first_name": "norbit", "username": self.bot_username}

    def _set_webhook(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        url = args.get("url")
        if not isinstance(url, str):
            raise _Failure(400, "Bad Request: bad webhook: URL is not specified")
        secret = args.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str) or not 1 <= len(secret) <= 256 or not set(secret) <= _SECRET_CHARS
        ):
            raise _Failure(400, "Bad Request: secret token contains unallowed characters")
        if url and not url.startswith("https://"):
            raise _Failure(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url or None
        self.webhook_secret = secret if url else None
        return True

    def _delete_webhook(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        self.webhook_url = None
        self.webhook_secret = None
        return True

    def _get_webhook_info(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        return {"url": self.webhook_url or "", "has_custom_certificate": False, "pending_update_count": 0}

    def _send_message(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        chat_id = self._chat(args)
        text = args.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Failure(400, "Bad Request: message text is empty")
        if len(text) > TEXT_LIMIT:
            raise _Failure(400, "Bad Request: message is too long")
        business = args.get("business_connection_id")
        return self._record(
            chat_id=chat_id, kind="text", text=text, business_connection_id=str(business) if business else None
        )

    def _send_media(self, kind: str, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        chat_id = self._chat(args)
        caption = args.get("caption")
        if isinstance(caption, str) and len(caption) > CAPTION_LIMIT:
            raise _Failure(400, "Bad Request: message caption is too long")
        upload = files.get(kind)
        given = args.get(kind)
        if upload is not None:
            if kind == "photo" and len(upload.content) > 10 << 20:
                raise _Failure(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            return self._record(
                chat_id=chat_id,
                kind=kind,
                text=caption if isinstance(caption, str) else None,
                content=upload.content,
                file_name=upload.filename,
                content_type=upload.content_type,
            )
        if isinstance(given, str) and given:
            if given.startswith(("http://", "https://")):
                return self._record(chat_id=chat_id, kind=kind, url=given)
            stored = self._files.get(given)
            if stored is None:
                raise _Failure(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return self._record(chat_id=chat_id, kind=kind, content=stored.content)
        raise _Failure(400, f"Bad Request: there is no {kind} in the request")

    def _get_file(self, args: Mapping[str, Any], files: Mapping[str, Upload]) -> Any:
        file_id = args.get("file_id")
        stored = self._files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise _Failure(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.content),
            "file_path": stored.path,
        }


def _error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    headers = {}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
        headers["Retry-After"] = str(retry_after)
    return Response.json(code, body, headers)


_METHODS: dict[str, Callable[[TelegramEmulator, Mapping[str, Any], Mapping[str, Upload]], Any]] = {
    "getme": TelegramEmulator._get_me,
    "setwebhook": TelegramEmulator._set_webhook,
    "deletewebhook": TelegramEmulator._delete_webhook,
    "getwebhookinfo": TelegramEmulator._get_webhook_info,
    "sendmessage": TelegramEmulator._send_message,
    "sendphoto": lambda emu, args, files: emu._send_media("photo", args, files),
    "senddocument": lambda emu, args, files: emu._send_media("document", args, files),
    "getfile": TelegramEmulator._get_file,
}
