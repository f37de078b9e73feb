"""WhatsApp (Cloud API): customers write to your business number; agents' replies go back from it.

Subscribe the app's webhook to the ``messages`` field and route it (GET and POST) to
:meth:`WhatsAppConnector.handle_http`. WhatsApp allows free-form messages only within 24 hours of the customer's
last message; outside that window the connector sends ``fallback_template`` (an approved message template)
instead, and also when WhatsApp refuses a free-form message with error 131047.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from .._connector import HttpResponse
from .._events import DeliverReply
from .._models import Attachment, Conversation, User, converter
from ..exceptions import ConfigurationError, InvalidRequest
from ..store import Batch, Job, NewJob, Put
from . import _render as render
from ._base import (
    ChannelConnector,
    InboundMessage,
    MediaRef,
    chunk_text,
    dict_field,
    list_field,
    shown_id,
    skipped,
    str_field,
)
from ._graph import GraphError, graph_call
from ._http import json_object, meta_handshake, verify_meta_signature

__all__ = [
    "FailedStatus",
    "Template",
    "WhatsAppConfig",
    "WhatsAppConnector",
    "parse_failures",
    "parse_webhook",
]

SERVICE = "whatsapp"
TEXT_LIMIT = 4096
WINDOW_SECONDS = 24 * 3600.0
#: Send the template a little before the window closes: the message must arrive inside it.
WINDOW_MARGIN = 60.0
TEMPLATE_PARAMETER_LIMIT = 1024
RE_ENGAGEMENT = 131047
REENGAGE_JOB = "in.reengage"
TEMPLATE_SENT = 1 << 30  # the progress mark of a reply answered with the template
log = logging.getLogger("norbit_connectors.channels.whatsapp")
#: Where WhatsApp's media URLs point (they need the access token); any other host gets the request without it.
MEDIA_TOKEN_ORIGINS = ("https://lookaside.fbsbx.com",)
_MEDIA_KINDS = ("image", "document", "audio", "video", "sticker")


def _languages(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@frozen(kw_only=True)
class Template:
    """An approved WhatsApp message template.

    ``languages``: the codes it is approved in; the customer's language (``User.details["language"]``) is used
    when it is one of them, else the first. ``parameters``: one per ``{{n}}`` of the template's body, each a
    format string over ``{text}`` (the agent's reply), ``{agent}`` (the agent's name) and ``{customer}``.
    """

    name: str
    languages: tuple[str, ...] = field(default=("en_US",), converter=_languages)
    parameters: tuple[str, ...] = field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.name or not self.languages:
            raise ConfigurationError("Template needs a name and at least one language code")

    def language_for(self, preferred: str | None) -> str:
        if preferred:
            wanted = preferred.replace("-", "_").lower()
            for code in self.languages:
                if code.lower() == wanted:
                    return code
            for code in self.languages:
                if code.lower().split("_")[0] == wanted.split("_")[0]:
                    return code
        return self.languages[0]


@frozen(kw_only=True)
class WhatsAppConfig:
    """Credentials of a WhatsApp Business number on the Cloud API."""

    access_token: str = field(repr=False)
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    phone_number_id: str
    department_id: str | None = None
    base_url: str = "https://graph.facebook.com/v21.0"
    fallback_template: Template | None = None
    max_file_bytes: int = 25 << 20

    def __attrs_post_init__(self) -> None:
        for name in ("access_token", "app_secret", "verify_token", "phone_number_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigurationError(f"WhatsAppConfig.{name} must be a non-empty string")


def parse_webhook(
    data: Mapping[str, Any],
    *,
    phone_number_id: str | None = None,
    source: str = "whatsapp",
    department_id: str | None = None,
) -> list[InboundMessage]:
    """The customer messages of a Cloud API webhook (statuses and other numbers' messages are skipped).

    Raises InvalidRequest for a body not shaped like a webhook.
    """
    if data.get("object") != "whatsapp_business_account":
        log.warning(
            "%s: a webhook for object %s, not whatsapp_business_account: ignored", source, shown_id(data.get("object"))
        )
        return []
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise InvalidRequest("a WhatsApp webhook needs an entry list")
    found: list[InboundMessage] = []
    for entry in entries:
        if not isinstance(entry, dict):
            skipped(log, source, "an entry[] item", InvalidRequest("entry[] items must be objects"))
            continue
        for change in list_field(entry, "changes"):
            if not isinstance(change, dict) or change.get("field") != "messages":
                continue
            value = dict_field(change, "value")
            metadata = dict_field(value, "metadata")
            number = metadata.get("phone_number_id")
            if phone_number_id is not None and number != phone_number_id:
                if list_field(value, "messages"):
                    log.info("%s: messages for number %s not served here: ignored", source, shown_id(number))
                continue
            for error in list_field(value, "errors"):
                if isinstance(error, dict):
                    log.warning(
                        "%s: WhatsApp reports error %s: %s",
                        source,
                        shown_id(error.get("code")),
                        str(error.get("title") or error.get("message") or "")[:200],
                    )
            names = {
                str(c.get("wa_id")): str_field(dict_field(c, "profile"), "name")
                for c in list_field(value, "contacts")
                if isinstance(c, dict)
            }
            for message in list_field(value, "messages"):
                try:
                    parsed = _parse_message(message, names, source, department_id)
                except InvalidRequest as bad:
                    skipped(log, source, "a message", bad)  # the others in the same body still count
                    continue
                if parsed is not None:
                    found.append(parsed)
    return found


@frozen(kw_only=True)
class FailedStatus:
    """WhatsApp could not deliver a message the app sent (``code`` is its error code, e.g. 131047)."""

    message_id: str
    recipient: str
    code: int | None


def parse_failures(data: Mapping[str, Any], *, phone_number_id: str | None = None) -> list[FailedStatus]:
    """The ``failed`` statuses of a Cloud API webhook (sent / delivered / read are of no interest here)."""
    if data.get("object") != "whatsapp_business_account" or not isinstance(data.get("entry"), list):
        return []
    found: list[FailedStatus] = []
    for entry in data["entry"]:
        for change in list_field(entry, "changes") if isinstance(entry, dict) else ():
            value = dict_field(change, "value") if isinstance(change, dict) else {}
            metadata = dict_field(value, "metadata")
            if phone_number_id is not None and metadata.get("phone_number_id") != phone_number_id:
                continue
            for status in list_field(value, "statuses"):
                if not isinstance(status, dict) or status.get("status") != "failed":
                    continue
                message_id = str_field(status, "id")
                recipient = str_field(status, "recipient_id")
                if not message_id or not recipient:
                    continue
                errors = [e for e in list_field(status, "errors") if isinstance(e, dict)]
                code = errors[0].get("code") if errors else None
                found.append(
                    FailedStatus(
                        message_id=message_id,
                        recipient=recipient,
                        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                    )
                )
    return found


def render_message(message: Mapping[str, Any]) -> tuple[str, list[MediaRef]]:
    """(text, files) of a Cloud API message for the agents: every type becomes something readable (its text, its
    file, or a line such as "[location] ..." or "[contact] Ann +49..."); unknown ones "[unsupported message: x]".

    Raises InvalidRequest for a media message without a media id.
    """
    kind = str_field(message, "type") or "text"
    inner = dict_field(message, kind)
    media: list[MediaRef] = []
    if kind == "text":
        return str_field(inner, "body") or "", media
    if kind in _MEDIA_KINDS:
        media_id = str_field(inner, "id")
        if not media_id:
            raise InvalidRequest(f"a WhatsApp {kind} message needs {kind}.id")
        mime = str_field(inner, "mime_type")
        extension = (mime or "").split("/")[-1].split(";")[0].strip() or "bin"
        name = str_field(inner, "filename") or f"{kind}-{media_id}.{extension}"
        media.append(MediaRef(ref=media_id, name=name, content_type=mime))
        line = None
        if kind == "audio":
            line = "[voice message]" if inner.get("voice") is True else "[audio]"
        elif kind == "sticker":
            line = "[animated sticker]" if inner.get("animated") is True else "[sticker]"
        return render.join_lines(line, str_field(inner, "caption")), media
    if kind == "button":
        return str_field(inner, "text") or str_field(inner, "payload") or render.label("button"), media
    if kind == "interactive":
        reply = dict_field(inner, "button_reply") or dict_field(inner, "list_reply")
        flow = dict_field(inner, "nfm_reply")
        if reply:
            return str_field(reply, "title") or str_field(reply, "id") or render.label("reply"), media
        if flow:
            return render.join_lines("[form reply]", str_field(flow, "body"), str_field(flow, "response_json")), media
        return render.unsupported(f"interactive {str_field(inner, 'type') or ''}".strip()), media
    if kind == "location":
        line = render.location_line(
            inner.get("latitude"), inner.get("longitude"), name=inner.get("name"), address=inner.get("address")
        )
        return render.join_lines(line, str_field(inner, "url")), media
    if kind == "contacts":
        lines = [_contact_line(c) for c in list_field(message, "contacts") if isinstance(c, dict)]
        return render.join_lines(*lines) or "[contact]", media
    if kind == "reaction":
        emoji = str_field(inner, "emoji")
        target = str_field(inner, "message_id")
        shown = "".join(c for c in target or "" if c.isprintable() and c not in "[]")[:80]
        to = f" to message {shown}" if shown else ""
        return (f"[reaction {emoji}{to}]" if emoji else f"[reaction removed{to}]"), media
    if kind == "order":
        items = [_order_item(i) for i in list_field(inner, "product_items") if isinstance(i, dict)]
        return render.join_lines(render.label("order", *items), str_field(inner, "text")), media
    if kind == "system":
        return render.join_lines("[system]", str_field(inner, "body")), media
    if kind == "unsupported":
        errors = [e for e in list_field(message, "errors") if isinstance(e, dict)]
        details = dict_field(errors[0], "error_data") if errors else {}
        reason = str_field(details, "details") or (str_field(errors[0], "title") if errors else None)
        return render.unsupported(reason), media
    return render.unsupported(kind), media


def _context_lines(message: Mapping[str, Any]) -> list[str]:
    """``[forwarded]`` and ``[reply to an earlier message]`` lines (WhatsApp names neither the origin nor the
    replied-to text); a reaction says itself which message it is about."""
    context = dict_field(message, "context")
    lines: list[str] = []
    if context.get("frequently_forwarded") is True:
        lines.append("[forwarded many times]")
    elif context.get("forwarded") is True:
        lines.append(render.forwarded_line())
    if str_field(context, "id") and message.get("type") != "reaction":
        lines.append(render.reply_line())
    return lines


def _contact_line(contact: Mapping[str, Any]) -> str:
    name = dict_field(contact, "name")
    shown = str_field(name, "formatted_name") or " ".join(
        t for t in (str_field(name, "first_name"), str_field(name, "last_name")) if t
    )
    phones = [p.get("phone") or p.get("wa_id") for p in list_field(contact, "phones") if isinstance(p, dict)]
    emails = [e.get("email") for e in list_field(contact, "emails") if isinstance(e, dict)]
    return render.person_line(shown, phones, emails)


def _order_item(item: Mapping[str, Any]) -> str:
    quantity = item.get("quantity")
    product = str_field(item, "product_retailer_id") or "item"
    price = item.get("item_price")
    currency = str_field(item, "currency") or ""
    amount = ""
    if isinstance(price, int | float | str) and not isinstance(price, bool):
        amount = f" ({price} {currency})" if currency else f" ({price})"
    count = f"{quantity} x " if isinstance(quantity, int | str) and not isinstance(quantity, bool) else ""
    return f"{count}{product}{amount}"


def _parse_message(
    message: Any, names: Mapping[str, str | None], source: str, department_id: str | None
) -> InboundMessage | None:
    if not isinstance(message, dict):
        raise InvalidRequest("messages[] items must be objects")
    sender = str_field(message, "from")
    message_id = str_field(message, "id")
    if not sender or not message_id:
        raise InvalidRequest("a WhatsApp message needs from and id")
    if message.get("type") == "request_welcome":
        log.info("%s: %s opened the chat (request_welcome): nothing to relay", source, shown_id(sender))
        return None
    text, media = render_message(message)
    if not text.strip() and not media:
        text = "[empty message]"
    text = render.join_lines(*_context_lines(message), text)
    timestamp = str_field(message, "timestamp")
    at = float(timestamp) if timestamp and timestamp.isdigit() else None
    user = User(id=f"whatsapp:{sender}", name=names.get(sender) or f"+{sender}", details={"phone": f"+{sender}"})
    conversation = Conversation(id=f"whatsapp:{sender}", user=user, department_id=department_id, source=source)
    return InboundMessage(
        event_id=message_id, conversation=conversation, message_id=message_id, text=text, media=tuple(media), at=at
    )


def template_parameter(text: str) -> str:
    """``text`` as WhatsApp accepts a template parameter: no new lines or tabs, no runs of 5 spaces, capped."""
    flat = re.sub(r"[\n\r\t]+", " ", text)
    flat = re.sub(r" {4,}", "   ", flat).strip() or "-"
    if len(flat) > TEMPLATE_PARAMETER_LIMIT:
        flat = flat[: TEMPLATE_PARAMETER_LIMIT - 1] + "…"
    return flat


class WhatsAppConnector(ChannelConnector):
    """Customers write to a WhatsApp Business number; agents' replies go back from it."""

    name: ClassVar[str] = "whatsapp"
    service: ClassVar[str] = SERVICE

    config: WhatsAppConfig

    def __init__(self, config: WhatsAppConfig) -> None:
        super().__init__(config, WhatsAppConfig)

    def __repr__(self) -> str:
        return f"<WhatsAppConnector phone_number_id={self.config.phone_number_id!r}>"

    def _window_namespace(self) -> str | None:
        return f"{self.name}.window"

    async def call(self, what: str, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await graph_call(
            self.http, SERVICE, what, method, f"{self._api}/{path}", self.config.access_token, **kwargs
        )

    # -- inbound -----------------------------------------------------------------------------------------

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        if method == "GET":
            return meta_handshake(query, self.config.verify_token)
        if method != "POST":
            return HttpResponse.text(405, "expected GET (subscription) or POST (notifications)")
        verify_meta_signature(headers, body, self.config.app_secret)
        data = json_object(body)
        messages = parse_webhook(
            data,
            phone_number_id=self.config.phone_number_id,
            source=self.name,
            department_id=self.config.department_id,
        )
        await self._accept(messages)
        for failure in parse_failures(data, phone_number_id=self.config.phone_number_id):
            if failure.code != RE_ENGAGEMENT:
                log.warning("whatsapp: message %s failed (error %s)", failure.message_id, failure.code)
                continue
            job = NewJob(
                queue_key=f"{self.name}:whatsapp:{failure.recipient}",
                connector=self.name,
                kind=REENGAGE_JOB,
                payload={"message_id": failure.message_id},
            )
            await self.context.accept_inbound(self.name, f"failed:{failure.message_id}", [job])
        return HttpResponse.text(200, "ok")

    async def _fetch(self, media: MediaRef) -> bytes | None:
        info = await self.call("media", "GET", urllib.parse.quote(media.ref, safe=""))
        url = info.get("url")
        size = info.get("file_size")
        if isinstance(size, int) and size > self.max_file_bytes:
            return None
        if not isinstance(url, str):
            raise GraphError("whatsapp media: no url in the answer", service=SERVICE, graph_code=None, subcode=None)
        # The token goes to the Graph API's own origin and to Meta's media host only.
        return await self.http.fetch(
            url,
            limit=self.max_file_bytes,
            trusted=[self._api],
            token=self.config.access_token,
            token_origins=[self._api, *MEDIA_TOKEN_ORIGINS],
        )

    # -- outbound ----------------------------------------------------------------------------------------

    async def _send_reply(self, event: DeliverReply) -> None:
        conversation = event.conversation
        _, to = self._peer(conversation, ("whatsapp",))
        message = event.reply.message
        done = await self._parts_done(conversation.id, message.id)
        parts: list[Any] = [*chunk_text(message.text, TEXT_LIMIT), *message.attachments]
        if done >= TEMPLATE_SENT or (parts and done >= len(parts)):
            return
        last = await self.last_inbound(conversation.id)
        now = self.context.now()
        if last is None or now - last > WINDOW_SECONDS - WINDOW_MARGIN:
            await self._send_template(event, to)
            return
        for index, part in enumerate(parts):
            if index < done:
                continue
            try:
                if isinstance(part, str):
                    answer = await self._send(to, {"type": "text", "text": {"body": part, "preview_url": False}})
                else:
                    answer = await self._send_attachment(to, part)
            except GraphError as error:
                if error.graph_code != RE_ENGAGEMENT:
                    raise
                # WhatsApp says the window closed (its clock, or a message we did not see): fall back.
                await self._send_template(event, to)
                return
            sent_id = _message_id(answer)
            if sent_id is not None:
                await self._remember(sent_id, event)
            await self._part_sent(conversation.id, message.id, index + 1, sent_id)

    async def _remember(self, sent_id: str, event: DeliverReply) -> None:
        # WhatsApp may accept a free-form message and report 131047 later, in a status webhook: keep what the
        # template would need to say instead.
        reply = event.reply
        value = {
            "conversation": converter.unstructure(event.conversation),
            "message_id": reply.message.id,
            "text": reply.message.text,
            "agent": reply.agent.name if reply.agent is not None else None,
        }
        await self.context.store.commit(
            Batch(puts=[Put(namespace=f"{self.name}.sent_ids", key=sent_id, value=value)]), now=self.context.now()
        )

    async def _process(self, job: Job) -> Batch | None:
        if job.kind != REENGAGE_JOB:
            return await super()._process(job)
        doc = await self.context.store.get(f"{self.name}.sent_ids", str(job.payload["message_id"]))
        if doc is None or not isinstance(doc.value, dict):
            return None  # not ours, or sent before this store
        value = doc.value
        conversation = converter.structure(value["conversation"], Conversation)
        message_id = str(value["message_id"])
        if await self._parts_done(conversation.id, message_id) >= TEMPLATE_SENT:
            return None  # one template per reply is enough
        agent = str(value["agent"]) if value.get("agent") else None
        _, to = self._peer(conversation, ("whatsapp",))
        await self._send_template_for(conversation, message_id, str(value.get("text") or ""), agent, to)
        return None

    async def _send(self, to: str, content: Mapping[str, Any]) -> dict[str, Any]:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, **content}
        return await self.call("messages", "POST", f"{self.config.phone_number_id}/messages", json=body)

    async def _send_attachment(self, to: str, attachment: Attachment) -> dict[str, Any]:
        content_type = attachment.content_type or ""
        kind = "image" if content_type in ("image/jpeg", "image/png") else "document"
        media: dict[str, Any]
        if attachment.content is not None:
            uploaded = await self.call(
                "media upload",
                "POST",
                f"{self.config.phone_number_id}/media",
                data={"messaging_product": "whatsapp", "type": content_type or "application/octet-stream"},
                files={"file": (attachment.name, attachment.content, content_type or "application/octet-stream")},
            )
            media = {"id": str(uploaded.get("id"))}
        elif attachment.url:
            media = {"link": attachment.url}
        else:
            return await self._send(to, {"type": "text", "text": {"body": f"[{attachment.name}]"}})
        if kind == "document":
            media["filename"] = attachment.name
        return await self._send(to, {"type": kind, kind: media})

    async def _send_template(self, event: DeliverReply, to: str) -> None:
        reply = event.reply
        text = reply.message.text or ", ".join(a.name for a in reply.message.attachments)
        agent = reply.agent.name if reply.agent is not None else None
        await self._send_template_for(event.conversation, reply.message.id, text, agent, to)

    async def _send_template_for(
        self, conversation: Conversation, message_id: str, text: str, agent: str | None, to: str
    ) -> None:
        template = self.config.fallback_template
        if template is None:
            raise ConfigurationError(
                f"conversation {conversation.id!r}: the customer last wrote more than 24 hours ago, so WhatsApp "
                "accepts only a message template: set WhatsAppConfig.fallback_template"
            )
        values = {"text": text, "agent": agent or "", "customer": conversation.user.name}
        content: dict[str, Any] = {
            "name": template.name,
            "language": {"code": template.language_for(conversation.user.details.get("language"))},
        }
        if template.parameters:
            try:
                texts = [template_parameter(p.format(**values)) for p in template.parameters]
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigurationError(
                    f"Template.parameters may use only {{text}}, {{agent}} and {{customer}} ({exc})"
                ) from None
            content["components"] = [{"type": "body", "parameters": [{"type": "text", "text": t} for t in texts]}]
        answer = await self._send(to, {"type": "template", "template": content})
        await self._part_sent(conversation.id, message_id, TEMPLATE_SENT, _message_id(answer))


def _message_id(answer: Mapping[str, Any]) -> str | None:
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        value = messages[0].get("id")
        return str(value) if value is not None else None
    return None
