"""A strict local Meta Graph API for the WhatsApp Cloud API and the Messenger / Instagram Send API.

One emulator plays both products (they share the Graph API's conventions): bearer tokens on every call, errors as
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, webhooks signed with
``X-Hub-Signature-256`` and the GET subscription handshake. It enforces the customer service windows: a free-form
WhatsApp message more than 24 hours after the customer's last message fails with code 131047, a Messenger
message outside 24 hours without the ``HUMAN_AGENT`` tag with code 10 / subcode 2018278.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from ..exceptions import UsageError
from ._webhook import LoopbackEmulator, Request, Response, Upload, Webhook

__all__ = ["MetaEmulator", "MetaUser", "SentGraphMessage", "WhatsAppCustomer"]

DAY = 24 * 3600.0
WA_TEXT_LIMIT = 4096
MESSENGER_TEXT_LIMIT = 2000


@attrs.frozen(kw_only=True)
class WhatsAppCustomer:
    wa_id: str  # the phone number, digits only
    name: str


@attrs.frozen(kw_only=True)
class MetaUser:
    """A person writing to the page on Messenger (``psid``) or to its Instagram account (an IGSID)."""

    id: str
    name: str
    platform: Literal["messenger", "instagram"] = "messenger"


@attrs.frozen(kw_only=True)
class SentGraphMessage:
    """A message the app sent: ``product`` "whatsapp" or "messenger"; ``body`` the request's fields as sent
    (``message`` / ``recipient`` decoded from JSON); ``upload`` the file sent with it, if any."""

    id: str
    product: str
    to: str
    type: str
    body: Mapping[str, Any]
    upload: Upload | None = None
    delivered: bool = True  # False: accepted by the API, then failed (reported in a status webhook)

    @property
    def text(self) -> str | None:
        if self.product == "whatsapp":
            text = self.body.get("text")
            return str(text.get("body")) if isinstance(text, dict) else None
        message = self.body.get("message")
        return str(message["text"]) if isinstance(message, dict) and "text" in message else None


class _GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        kind: str = "OAuthException",
        details: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.subcode = subcode
        self.kind = kind
        self.details = details
        self.headers = dict(headers or {})


@attrs.frozen(kw_only=True)
class _Media:
    id: str
    content: bytes = attrs.field(repr=False)
    mime_type: str
    filename: str | None = None
    url: str | None = None  # what the media endpoint names as its URL (None: its own download URL)


@attrs.frozen(kw_only=True)
class _Template:
    name: str
    languages: tuple[str, ...]
    body_parameters: int


class _MessageKinds:
    """The customers' side for every kind of WhatsApp and Messenger message beyond text and pictures, with the
    platforms' own webhook shapes (Cloud API ``messages[]`` types; Messenger ``message.attachments[]``)."""

    def _wa_inbound(self, customer: WhatsAppCustomer, kind: str, fields: Mapping[str, Any]) -> Webhook:
        raise NotImplementedError

    def _messenger_inbound(self, user: MetaUser, message: Mapping[str, Any]) -> Webhook:
        raise NotImplementedError

    def _add_media(self, content: bytes, mime_type: str, filename: str | None, url: str | None = None) -> _Media:
        raise NotImplementedError

    # -- WhatsApp ----------------------------------------------------------------------------------------

    def whatsapp_message(self, customer: WhatsAppCustomer, kind: str, fields: Mapping[str, Any]) -> Webhook:
        """A message of any ``type`` with any ``fields`` (beside from, id, timestamp and type)."""
        return self._wa_inbound(customer, kind, fields)

    def whatsapp_file(
        self,
        customer: WhatsAppCustomer,
        kind: Literal["image", "document", "audio", "video", "sticker"],
        content: bytes,
        *,
        mime_type: str,
        url: str | None = None,
        **extra: Any,
    ) -> Webhook:
        """A media message of any kind (``voice=True`` for a voice message, ``animated=`` for a sticker, ...);
        ``url``: what the media endpoint answers as the file's URL (by default its own download URL)."""
        media = self._add_media(content, mime_type, extra.get("filename"), url)
        inner = {"id": media.id, "mime_type": mime_type, "sha256": hashlib.sha256(content).hexdigest(), **extra}
        return self._wa_inbound(customer, kind, {kind: inner})

    def whatsapp_location(
        self,
        customer: WhatsAppCustomer,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
    ) -> Webhook:
        """A shared location (a place with ``name`` and ``address``)."""
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        location.update({k: v for k, v in (("name", name), ("address", address)) if v is not None})
        return self._wa_inbound(customer, "location", {"location": location})

    def whatsapp_contacts(self, customer: WhatsAppCustomer, *contacts: tuple[str, str]) -> Webhook:
        """Shared contacts, each (formatted name, phone number)."""
        cards = []
        for name, phone in contacts:
            first, _, last = name.partition(" ")
            card_name = {"formatted_name": name, "first_name": first, **({"last_name": last} if last else {})}
            digits = "".join(c for c in phone if c.isdigit())
            cards.append({"name": card_name, "phones": [{"phone": phone, "wa_id": digits, "type": "CELL"}]})
        return self._wa_inbound(customer, "contacts", {"contacts": cards})

    def whatsapp_reaction(self, customer: WhatsAppCustomer, message_id: str, emoji: str) -> Webhook:
        """A reaction to a message (``emoji`` empty: the reaction was removed)."""
        return self._wa_inbound(customer, "reaction", {"reaction": {"message_id": message_id, "emoji": emoji}})

    def whatsapp_order(
        self, customer: WhatsAppCustomer, items: list[tuple[str, int, float, str]], *, text: str | None = None
    ) -> Webhook:
        """An order from the catalog: (product retailer id, quantity, item price, currency) per item."""
        order: dict[str, Any] = {
            "catalog_id": "1928374650192837",
            "product_items": [
                {"product_retailer_id": p, "quantity": q, "item_price": price, "currency": c}
                for p, q, price, c in items
            ],
        }
        if text is not None:
            order["text"] = text
        return self._wa_inbound(customer, "order", {"order": order})

    def whatsapp_unsupported(self, customer: WhatsAppCustomer) -> Webhook:
        """A message of a type the Cloud API does not support (it sends type "unsupported" with an error)."""
        error = {
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."},
        }
        return self._wa_inbound(customer, "unsupported", {"errors": [error]})

    # -- Messenger ---------------------------------------------------------------------------------------

    def messenger_message(self, user: MetaUser, message: Mapping[str, Any]) -> Webhook:
        """A message with any fields (beside mid): ``text``, ``attachments``, ``sticker_id``, ``is_unsupported``."""
        return self._messenger_inbound(user, message)

    def messenger_attachment(self, user: MetaUser, kind: str, url: str) -> Webhook:
        """An attachment of ``kind`` ("image", "video", "audio", "file", "share", ...) at ``url``."""
        return self._messenger_inbound(user, {"attachments": [{"type": kind, "payload": {"url": url}}]})

    def messenger_sticker(self, user: MetaUser, content: bytes, *, sticker_id: int = 369239263222822) -> Webhook:
        """A sticker (by default Meta's thumbs-up "like"): an image attachment with its ``sticker_id``."""
        media = self._add_media(content, "image/png", None)
        payload = {"url": f"{self.root_url}/cdn/{media.id}", "sticker_id": sticker_id}
        attachments = [{"type": "image", "payload": payload}]
        return self._messenger_inbound(user, {"attachments": attachments, "sticker_id": sticker_id})

    def messenger_location(self, user: MetaUser, latitude: float, longitude: float) -> Webhook:
        """A shared location (Messenger's ``location`` attachment)."""
        attachment = {
            "type": "location",
            "title": "Pinned Location",
            "payload": {"coordinates": {"lat": latitude, "long": longitude}},
        }
        return self._messenger_inbound(user, {"attachments": [attachment]})

    def messenger_fallback(self, user: MetaUser, title: str, url: str) -> Webhook:
        """A shared link Messenger has no attachment type for (a ``fallback`` attachment)."""
        attachment = {"type": "fallback", "payload": None, "title": title, "url": url}
        return self._messenger_inbound(user, {"attachments": [attachment]})

    @property
    def root_url(self) -> str:
        raise NotImplementedError


class MetaEmulator(LoopbackEmulator, _MessageKinds):
    """A WhatsApp Business number and a Facebook page (with its Instagram account) on a local Graph API.

    ``base_url`` (``http://127.0.0.1:<port>/v21.0``) goes in ``WhatsAppConfig.base_url`` and
    ``MessengerConfig.base_url``, with ``access_token`` / ``page_access_token``, ``app_secret``, ``verify_token``,
    ``phone_number_id`` and ``page_id``.
    """

    thread_name = "meta-emulator"

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        version: str = "v21.0",
        window_errors: Literal["sync", "status"] = "sync",
    ) -> None:
        super().__init__(clock)
        # "sync": a free-form WhatsApp message outside the window is refused with 131047 at once; "status": it is
        # accepted, then reported failed with 131047 in a status webhook (see take_statuses()).
        self.window_errors = window_errors
        self._statuses: list[Webhook] = []
        self.version = version
        self.app_secret = secrets.token_hex(16)
        self.verify_token = secrets.token_urlsafe(12)
        self.access_token = "EAAG" + secrets.token_urlsafe(32)
        self.page_access_token = "EAAP" + secrets.token_urlsafe(32)
        self.phone_number_id = "106540352242922"
        self.display_phone_number = "15550783881"
        self.waba_id = "102290129340398"
        self.page_id = "104620188967384"
        self.instagram_id = "17841400000000001"
        self.app_id = "1234567890123456"
        self._ids = itertools.count(1)
        self._templates: dict[str, _Template] = {}
        self._wa_customers: dict[str, WhatsAppCustomer] = {}
        self._users: dict[str, MetaUser] = {}
        self._last_inbound: dict[str, float] = {}
        self._media: dict[str, _Media] = {}
        self._sent: list[SentGraphMessage] = []
        self._echoes: list[Webhook] = []
        self.calls: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"<MetaEmulator {self.version}>"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/{self.version}"

    # -- set-up ------------------------------------------------------------------------------------------

    def add_template(self, name: str, *, languages: tuple[str, ...] = ("en_US",), body_parameters: int = 0) -> None:
        """An approved WhatsApp message template, with ``body_parameters`` {{n}} placeholders."""
        with self._lock:
            self._templates[name] = _Template(name=name, languages=languages, body_parameters=body_parameters)

    def whatsapp_customer(self, name: str, wa_id: str | None = None) -> WhatsAppCustomer:
        with self._lock:
            customer = WhatsAppCustomer(wa_id=wa_id or f"4479{next(self._ids):08d}", name=name)
            self._wa_customers[customer.wa_id] = customer
            return customer

    def messenger_user(self, name: str, *, platform: Literal["messenger", "instagram"] = "messenger") -> MetaUser:
        with self._lock:
            user = MetaUser(id=f"{next(self._ids) + 24000000000000000}", name=name, platform=platform)
            self._users[user.id] = user
            return user

    # -- webhooks ----------------------------------------------------------------------------------------

    def sign(self, body: bytes, *, secret: str | None = None) -> dict[str, str]:
        digest = hmac.new((secret or self.app_secret).encode(), body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}

    def signed(self, payload: Any, *, secret: str | None = None) -> Webhook:
        """``payload`` (any JSON value, or raw bytes) as Meta posts webhooks, correctly signed."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return Webhook(body=body, headers=self.sign(body, secret=secret), payload=payload)

    def handshake(self, *, verify_token: str | None = None, challenge: str = "1158201444") -> Webhook:
        """The GET Meta sends when the webhook is subscribed."""
        query = (
            f"hub.mode=subscribe&hub.challenge={challenge}"
            f"&hub.verify_token={verify_token if verify_token is not None else self.verify_token}"
        )
        return Webhook(body=b"", headers={}, method="GET", query=query)

    def whatsapp_text(self, customer: WhatsAppCustomer, text: str) -> Webhook:
        """The customer writes ``text`` on WhatsApp."""
        return self._wa_inbound(customer, "text", {"text": {"body": text}})

    def whatsapp_media(
        self,
        customer: WhatsAppCustomer,
        content: bytes,
        *,
        kind: Literal["image", "document"] = "image",
        mime_type: str = "image/jpeg",
        filename: str | None = None,
        caption: str | None = None,
    ) -> Webhook:
        """The customer sends a picture or a file; the app fetches it from the media endpoint."""
        media = self._add_media(content, mime_type, filename)
        inner: dict[str, Any] = {
            "id": media.id,
            "mime_type": mime_type,
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        if caption is not None:
            inner["caption"] = caption
        if kind == "document" and filename is not None:
            inner["filename"] = filename
        return self._wa_inbound(customer, kind, {kind: inner})

    def whatsapp_status(self, message_id: str, status: str = "delivered", *, error_code: int | None = None) -> Webhook:
        """A status update (sent / delivered / read / failed) for a message the app sent."""
        with self._lock:
            sent = next((m for m in self._sent if m.id == message_id), None)
        entry: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(int(self.now())),
            "recipient_id": sent.to if sent is not None else "0",
        }
        if error_code is not None:
            entry["errors"] = [{"code": error_code, "title": "Re-engagement message"}]
        return self.signed(self._wa_envelope({"statuses": [entry]}))

    def _wa_inbound(self, customer: WhatsAppCustomer, kind: str, fields: Mapping[str, Any]) -> Webhook:
        with self._lock:
            if customer.wa_id not in self._wa_customers:
                raise UsageError("unknown customer: create them with whatsapp_customer()")
            now = self.now()
            self._last_inbound[f"wa:{customer.wa_id}"] = now
            message = {
                "from": customer.wa_id,
                "id": f"wamid.HBgL{secrets.token_hex(12).upper()}",
                "timestamp": str(int(now)),
                "type": kind,
                **fields,
            }
            value = {
                "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.wa_id}],
                "messages": [message],
            }
        return self.signed(self._wa_envelope(value))

    def _wa_envelope(self, value: Mapping[str, Any]) -> dict[str, Any]:
        full = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id},
            **value,
        }
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": [{"value": full, "field": "messages"}]}],
        }

    def messenger_text(self, user: MetaUser, text: str) -> Webhook:
        """The person writes ``text`` to the page (or its Instagram account)."""
        return self._messenger_inbound(user, {"text": text})

    def messenger_image(self, user: MetaUser, content: bytes, *, mime_type: str = "image/jpeg") -> Webhook:
        """The person sends a picture: the webhook carries a CDN URL to fetch it from."""
        media = self._add_media(content, mime_type, None)
        url = f"{self.root_url}/cdn/{media.id}"
        return self._messenger_inbound(user, {"attachments": [{"type": "image", "payload": {"url": url}}]})

    def page_reply(self, user: MetaUser, text: str) -> Webhook:
        """Someone answers from the page's inbox (Meta Business Suite): Meta sends an ``is_echo`` webhook."""
        with self._lock:
            message = {"mid": f"m_{secrets.token_urlsafe(18)}", "is_echo": True, "text": text}
            event = {
                "sender": {"id": self._account(user)},
                "recipient": {"id": user.id},
                "timestamp": int(self.now() * 1000),
                "message": message,
            }
        return self.signed(self._messenger_envelope(user, event))

    def take_statuses(self) -> list[Webhook]:
        """The WhatsApp status webhooks (delivered, or failed with 131047) of messages sent since the last call."""
        with self._lock:
            statuses, self._statuses = self._statuses, []
            return statuses

    def take_echoes(self) -> list[Webhook]:
        """The ``is_echo`` webhooks of the messages the app sent since the last call (``message_echoes``)."""
        with self._lock:
            echoes, self._echoes = self._echoes, []
            return echoes

    def _account(self, user: MetaUser) -> str:
        return self.instagram_id if user.platform == "instagram" else self.page_id

    def _messenger_inbound(self, user: MetaUser, message: Mapping[str, Any]) -> Webhook:
        with self._lock:
            if user.id not in self._users:
                raise UsageError("unknown user: create them with messenger_user()")
            now = self.now()
            self._last_inbound[f"m:{user.id}"] = now
            event = {
                "sender": {"id": user.id},
                "recipient": {"id": self._account(user)},
                "timestamp": int(now * 1000),
                "message": {"mid": f"m_{secrets.token_urlsafe(18)}", **message},
            }
        return self.signed(self._messenger_envelope(user, event))

    def _messenger_envelope(self, user: MetaUser, event: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "object": "instagram" if user.platform == "instagram" else "page",
            "entry": [{"id": self._account(user), "time": int(self.now() * 1000), "messaging": [event]}],
        }

    def _add_media(self, content: bytes, mime_type: str, filename: str | None, url: str | None = None) -> _Media:
        with self._lock:
            media = _Media(
                id=str(9000000000000000 + next(self._ids)),
                content=content,
                mime_type=mime_type,
                filename=filename,
                url=url,
            )
            self._media[media.id] = media
            return media

    # -- what the app sent -------------------------------------------------------------------------------

    @property
    def sent(self) -> list[SentGraphMessage]:
        with self._lock:
            return list(self._sent)

    def sent_to(self, who: WhatsAppCustomer | MetaUser) -> list[SentGraphMessage]:
        wanted = who.wa_id if isinstance(who, WhatsAppCustomer) else who.id
        return [m for m in self.sent if m.to == wanted]

    def media_content(self, media_id: str) -> bytes | None:
        with self._lock:
            media = self._media.get(media_id)
            return media.content if media is not None else None

    # -- the Graph API -----------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        with self._lock:
            self.calls.append((request.method, request.path))
        try:
            if len(parts) == 2 and parts[0] == "cdn" and request.method == "GET":
                return self._cdn(parts[1])
            if parts == ["redirect"] and request.method == "GET":  # a CDN that answers with a redirect
                location = request.query.get("to", "")
                return Response(status=302, body=b"", content_type="text/plain", headers={"Location": location})
            if not parts or parts[0] != self.version:
                raise _GraphError(400, 2500, "Unknown path components", kind="OAuthException")
            rest = parts[1:]
            if len(rest) == 2 and rest[0] == "media-download":
                self._auth(request, self.access_token)
                return self._media_download(rest[1])
            if request.malformed is not None:
                raise _GraphError(400, 100, f"(#100) {request.malformed}", kind="OAuthException")
            if len(rest) == 2 and rest[0] == self.phone_number_id and request.method == "POST":
                self._auth(request, self.access_token)
                if rest[1] == "messages":
                    return self._fault_or("messages", lambda: self._wa_send(request))
                if rest[1] == "media":
                    return self._fault_or("media", lambda: self._wa_upload(request))
            if len(rest) == 1 and request.method == "GET" and rest[0] in self._media:
                self._auth(request, self.access_token)
                return self._fault_or("media", lambda: self._media_info(rest[0]))
            if len(rest) == 1 and request.method == "GET" and rest[0] in self._users:
                self._auth(request, self.page_access_token)
                return self._profile(self._users[rest[0]], request.query.get("fields", ""))
            if (
                len(rest) == 2
                and rest[1] == "messages"
                and rest[0] in ("me", self.page_id, self.instagram_id)
                and request.method == "POST"
            ):
                self._auth(request, self.page_access_token)
                return self._fault_or("messages", lambda: self._messenger_send(request))
            raise _GraphError(
                400,
                100,
                f"Unsupported {request.method.lower()} request. Object with ID '{rest[0] if rest else ''}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this operation.",
                subcode=33,
                kind="GraphMethodException",
            )
        except _GraphError as error:
            body: dict[str, Any] = {
                "message": error.message,
                "type": error.kind,
                "code": error.code,
                "fbtrace_id": secrets.token_urlsafe(9),
            }
            if error.subcode is not None:
                body["error_subcode"] = error.subcode
            if error.details is not None:
                body["error_data"] = {"messaging_product": "whatsapp", "details": error.details}
            return Response.json(error.status, {"error": body}, error.headers)

    def _auth(self, request: Request, expected: str) -> None:
        given = None
        authorization = request.header("Authorization")
        if authorization and authorization.startswith("Bearer "):
            given = authorization[len("Bearer ") :]
        given = given or request.query.get("access_token") or request.fields.get("access_token")
        if not given:
            raise _GraphError(400, 2500, "An active access token must be used to query information.")
        if not hmac.compare_digest(str(given), expected):
            raise _GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")

    def _fault_or(self, operation: str, action: Callable[[], Response]) -> Response:
        fault = self._take_fault(operation)
        if fault is None:
            with self._lock:
                return action()
        if fault.status == 429:
            raise _GraphError(
                429,
                4 if operation == "messages" else 80007,
                "(#4) Application request limit reached",
                headers={"Retry-After": str(fault.retry_after)},
            )
        raise _GraphError(fault.status, 1, "An unknown error occurred", kind="OAuthException")

    def _profile(self, user: MetaUser, fields: str) -> Response:
        first, _, last = user.name.partition(" ")
        known: dict[str, Any] = {"id": user.id}
        if user.platform == "instagram":
            known.update(name=user.name, username=user.name.lower().replace(" ", "_"))
        else:
            known.update(first_name=first, last_name=last, profile_pic=f"{self.root_url}/cdn/avatar-{user.id}")
        wanted = [f for f in fields.split(",") if f] or ["id"]
        unknown = [f for f in wanted if f not in known and f != "id"]
        if unknown:
            raise _GraphError(400, 100, f"(#100) Tried accessing nonexisting field ({unknown[0]})")
        return Response.json(200, {f: known[f] for f in [*wanted, "id"] if f in known})

    def _cdn(self, media_id: str) -> Response:
        media = self._media.get(media_id)
        if media is None:
            return Response(status=404, body=b"", content_type="text/plain")
        return Response(status=200, body=media.content, content_type=media.mime_type)

    def _media_download(self, media_id: str) -> Response:
        media = self._media.get(media_id)
        if media is None:
            raise _GraphError(404, 100, "(#100) Media not found")
        return Response(status=200, body=media.content, content_type=media.mime_type)

    def _media_info(self, media_id: str) -> Response:
        media = self._media[media_id]
        return Response.json(
            200,
            {
                "messaging_product": "whatsapp",
                "url": media.url or f"{self.base_url}/media-download/{media.id}",
                "mime_type": media.mime_type,
                "sha256": hashlib.sha256(media.content).hexdigest(),
                "file_size": len(media.content),
                "id": media.id,
            },
        )

    def _wa_upload(self, request: Request) -> Response:
        if request.fields.get("messaging_product") != "whatsapp":
            raise _GraphError(400, 100, "(#100) The parameter messaging_product is required.")
        upload = request.files.get("file")
        if upload is None:
            raise _GraphError(400, 100, "(#100) The parameter file is required.")
        mime = str(request.fields.get("type") or upload.content_type)
        media = self._add_media(upload.content, mime, upload.filename)
        return Response.json(200, {"id": media.id})

    def _wa_send(self, request: Request) -> Response:
        body = request.fields
        if body.get("messaging_product") != "whatsapp":
            raise _GraphError(400, 100, "(#100) The parameter messaging_product is required.")
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise _GraphError(400, 100, "(#100) The parameter to is required.")
        kind = body.get("type", "text")
        if to not in self._wa_customers:
            raise _GraphError(400, 131026, "Message Undeliverable.", details="The recipient is not on WhatsApp.")
        if kind == "text":
            text = body.get("text")
            value = text.get("body") if isinstance(text, dict) else None
            if not isinstance(value, str) or not value:
                raise _GraphError(400, 100, "(#100) The parameter text['body'] is required.")
            if len(value) > WA_TEXT_LIMIT:
                raise _GraphError(
                    400, 100, f"(#100) Param text['body'] must be at most {WA_TEXT_LIMIT} characters long."
                )
        elif kind in ("image", "document"):
            media = body.get(kind)
            if not isinstance(media, dict) or ("link" in media) == ("id" in media):
                raise _GraphError(400, 100, f"(#100) Param {kind} must have either 'link' or 'id'.")
            if "id" in media and str(media["id"]) not in self._media:
                raise _GraphError(400, 131053, "Media upload error", details="The media id is not valid.")
        elif kind == "template":
            self._check_template(body.get("template"))
        else:
            raise _GraphError(400, 100, f"(#100) Param type has an unsupported value {kind!r}.")
        delivered = True
        if kind != "template":
            last = self._last_inbound.get(f"wa:{to}")
            if (last is None or self.now() - last > DAY) and self.window_errors == "status":
                delivered = False
            elif last is None or self.now() - last > DAY:
                raise _GraphError(
                    400,
                    131047,
                    "Re-engagement message",
                    details="Message failed to send because more than 24 hours have passed since the customer "
                    "last replied to this number.",
                )
        message_id = f"wamid.HBgL{secrets.token_hex(12).upper()}"
        self._sent.append(
            SentGraphMessage(id=message_id, product="whatsapp", to=to, type=str(kind), body=body, delivered=delivered)
        )
        self._statuses.append(
            self.whatsapp_status(message_id, "delivered")
            if delivered
            else self.whatsapp_status(message_id, "failed", error_code=131047)
        )
        return Response.json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": message_id}],
            },
        )

    def _check_template(self, template: Any) -> None:
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            raise _GraphError(400, 100, "(#100) The parameter template['name'] is required.")
        known = self._templates.get(template["name"])
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if known is None or code not in known.languages:
            raise _GraphError(
                404, 132001, "Template name does not exist in the translation", details=f"template {template['name']!r}"
            )
        parameters: list[Any] = []
        for component in template.get("components") or []:
            if isinstance(component, dict) and component.get("type") == "body":
                parameters.extend(component.get("parameters") or [])
        if len(parameters) != known.body_parameters:
            raise _GraphError(400, 132000, "Number of parameters does not match the expected number of params")
        for parameter in parameters:
            text = parameter.get("text") if isinstance(parameter, dict) else None
            if not isinstance(text, str) or not text.strip() or "\n" in text or "\t" in text or "     " in text:
                raise _GraphError(
                    400, 132018, "There was an issue with the parameters in your template.", details=repr(text)
                )

    def _messenger_send(self, request: Request) -> Response:
        fields = dict(request.fields)
        for key in ("recipient", "message"):
            if isinstance(fields.get(key), str):
                try:
                    fields[key] = json.loads(fields[key])
                except ValueError:
                    raise _GraphError(400, 100, f"(#100) param {key} must be JSON") from None
        recipient = fields.get("recipient")
        user_id = recipient.get("id") if isinstance(recipient, dict) else None
        user = self._users.get(str(user_id)) if user_id is not None else None
        if user is None:
            raise _GraphError(400, 100, "(#100) No matching user found", subcode=2018001)
        messaging_type = fields.get("messaging_type")
        if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
            raise _GraphError(400, 100, "(#100) param messaging_type must be RESPONSE, UPDATE or MESSAGE_TAG")
        tag = fields.get("tag")
        if messaging_type == "MESSAGE_TAG" and tag not in ("HUMAN_AGENT", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE"):
            raise _GraphError(400, 100, "(#100) param tag must be a supported message tag")
        message = fields.get("message")
        if not isinstance(message, dict):
            raise _GraphError(400, 100, "(#100) param message must be an object")
        upload = request.files.get("filedata")
        kind = "text"
        if "text" in message:
            text = message["text"]
            if not isinstance(text, str) or not text:
                raise _GraphError(400, 100, "(#100) param message[text] must be a non-empty UTF-8 encoded string")
            if len(text) > MESSENGER_TEXT_LIMIT:
                raise _GraphError(
                    400,
                    100,
                    f"(#100) Length of param message[text] must be less than or equal to {MESSENGER_TEXT_LIMIT}",
                )
        elif isinstance(message.get("attachment"), dict):
            attachment = message["attachment"]
            kind = str(attachment.get("type"))
            if kind not in ("image", "video", "audio", "file"):
                raise _GraphError(400, 100, "(#100) param message[attachment][type] is not supported")
            payload = attachment.get("payload")
            url = payload.get("url") if isinstance(payload, dict) else None
            if upload is None and not isinstance(url, str):
                raise _GraphError(400, 100, "(#100) an attachment needs payload[url] or filedata")
            if upload is not None and user.platform == "instagram":
                raise _GraphError(400, 100, "(#100) Instagram does not accept attachment uploads: send a URL")
        else:
            raise _GraphError(400, 100, "(#100) param message must have text or attachment")
        last = self._last_inbound.get(f"m:{user.id}")
        age = self.now() - last if last is not None else float("inf")
        limit = 7 * DAY if messaging_type == "MESSAGE_TAG" and tag == "HUMAN_AGENT" else DAY
        if age > limit:
            raise _GraphError(400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278)
        mid = f"m_{secrets.token_urlsafe(18)}"
        fields["recipient"] = recipient
        fields["message"] = message
        self._sent.append(
            SentGraphMessage(id=mid, product="messenger", to=user.id, type=kind, body=fields, upload=upload)
        )
        echo = {
            "sender": {"id": self._account(user)},
            "recipient": {"id": user.id},
            "timestamp": int(self.now() * 1000),
            "message": {"mid": mid, "is_echo": True, "app_id": int(self.app_id), **message},
        }
        self._echoes.append(self.signed(self._messenger_envelope(user, echo)))
        return Response.json(200, {"recipient_id": user.id, "message_id": mid})
