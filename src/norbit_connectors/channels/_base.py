"""What the customer-side connectors share: the inbound path (verify, parse, accept once, fetch media, hand to the
hub) and resumable outbound deliveries."""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
from attrs import frozen

from .._connector import Connector, HttpResponse, Role
from .._events import DeliverReply, HubEvent
from .._models import Attachment, Conversation, Message, converter
from .._redact import protect
from .._urls import UnsafeUrl
from .._validate import (
    MAX_DETAIL_KEY_LENGTH,
    MAX_DETAIL_VALUE_LENGTH,
    MAX_DETAILS,
    MAX_NAME_LENGTH,
    id_problem,
)
from ..exceptions import (
    ConfigurationError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransportError,
    UsageError,
)
from ..store import Batch, Job, NewJob, Put
from ._http import HttpClient, raw_digest, require_httpx

__all__ = ["ChannelConnector", "InboundMessage", "MediaRef"]

log = logging.getLogger("norbit_connectors.channels")

INBOUND_JOB = "in.message"
#: Attempts at fetching a customer's file that failed for a reason that may pass (a rate limit, a network error)
#: before the message is relayed without it, with a note saying so.
MEDIA_ATTEMPTS = 3


@frozen(kw_only=True)
class MediaRef:
    """A file the customer sent, as the platform names it (fetched later, in a job that can be retried)."""

    ref: str  # the platform's file id, or a URL
    name: str
    content_type: str | None = None
    size: int | None = None


@frozen(kw_only=True)
class InboundMessage:
    """One customer message parsed from a webhook, before its media are fetched."""

    event_id: str  # the platform's id of the delivery: duplicates carry the same one
    conversation: Conversation
    message_id: str
    text: str
    media: tuple[MediaRef, ...] = ()
    at: float | None = None  # when the customer sent it (the platform's time), if known


class ChannelConnector(Connector, abc.ABC):
    """Base of the customer-side connectors of this package."""

    role: ClassVar[Role] = "customer"
    service: ClassVar[str] = ""
    #: Largest file fetched into ``Attachment.content``; larger ones arrive as a name only.
    max_file_bytes: int = 20 << 20

    def __init__(self, config: Any, config_type: type[Any]) -> None:
        if not isinstance(config, config_type):
            raise ConfigurationError(f"{type(self).__name__} takes a {config_type.__name__}")
        require_httpx()
        self.config = config
        self.max_file_bytes = int(config.max_file_bytes)
        self._api = str(config.base_url).rstrip("/")
        self.http = HttpClient(self.service)
        # Every field a config keeps out of its repr is a secret: keep it out of every log line too.
        hidden = [getattr(config, f.name) for f in attrs.fields(type(config)) if not f.repr]
        protect(self, *(value for value in hidden if isinstance(value, str)))

    async def _start(self) -> None:
        await self.http.open()

    async def _stop(self) -> None:
        await self.http.close()

    # -- inbound -----------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _fetch(self, media: MediaRef) -> bytes | None:
        """Hook: the bytes of a file the customer sent (None when larger than :attr:`max_file_bytes`)."""

    async def _enrich(self, conversation: Conversation) -> Conversation:
        """Hook: complete what the webhook did not say about the customer (their name, from a profile API)."""
        return conversation

    def _window_namespace(self) -> str | None:
        """Hook: the store namespace where the time of the customer's last message is kept, if tracked."""
        return None

    async def _accept(self, messages: Sequence[InboundMessage]) -> int:
        """Accept each message once (by its event id); returns how many were new."""
        accepted = 0
        for given in messages:
            try:
                item = bounded(given)
            except InvalidRequest as bad:
                skipped(log, self.name, "a message", bad)  # the others of the same webhook still count
                continue
            payload = {
                "conversation": converter.unstructure(item.conversation),
                "message_id": item.message_id,
                "text": item.text,
                "media": [converter.unstructure(m) for m in item.media],
                "at": item.at,
            }
            job = NewJob(
                queue_key=f"{self.name}:{item.conversation.id}",
                connector=self.name,
                kind=INBOUND_JOB,
                payload=payload,
            )
            if await self.context.accept_inbound(self.name, item.event_id, [job]):
                accepted += 1
            else:
                log.debug("%s: delivery %s already accepted", self.name, item.event_id)
        return accepted

    async def _process(self, job: Job) -> Batch | None:
        if job.kind != INBOUND_JOB:
            raise UsageError(f"connector {self.name!r} has no job kind {job.kind!r}")
        payload = job.payload
        conversation = await self._enrich(converter.structure(payload["conversation"], Conversation))
        attachments: list[Attachment] = []
        notes: list[str] = []
        for raw in payload.get("media") or ():
            media = converter.structure(raw, MediaRef)
            content = None
            try:
                if media.size is None or media.size <= self.max_file_bytes:
                    content = await self._fetch(media)
            except (RateLimited, TransportError) as exc:
                if job.attempts + 1 < MEDIA_ATTEMPTS:
                    raise  # the hub tries again later; the last attempt relays the message without the file
                log.warning("%s: file %r not fetched after %d attempts: %s", self.name, media.name, MEDIA_ATTEMPTS, exc)
                notes.append(not_fetched_note(media, exc))
                continue
            except (UnsafeUrl, RemoteError) as refused:
                # The message still goes through, saying what could not be fetched.
                log.warning("%s: file %r not fetched: %s", self.name, media.name, refused)
                notes.append(not_fetched_note(media, refused))
                continue
            if content is None:
                log.info("%s: file %r not fetched (larger than %d bytes)", self.name, media.name, self.max_file_bytes)
                notes.append(f"[{media_label(media)}: not fetched (larger than {_size(self.max_file_bytes)})]")
            attachments.append(Attachment(name=media.name, content=content, content_type=media.content_type))
        text = "\n".join(part for part in (str(payload["text"]), *notes) if part)
        message = Message(id=str(payload["message_id"]), text=text, attachments=tuple(attachments))
        puts: list[Put] = []
        namespace = self._window_namespace()
        if namespace is not None:
            puts.append(await self._window_put(namespace, conversation.id, payload.get("at")))
        hub_job = self.context.hub_job(
            "customer_message",
            conversation.id,
            {"conversation": converter.unstructure(conversation), "message": converter.unstructure(message)},
        )
        return Batch(puts=puts, jobs=[hub_job])

    async def _window_put(self, namespace: str, conversation_id: str, at: Any) -> Put:
        now = self.context.now()
        when = float(at) if isinstance(at, int | float) and not isinstance(at, bool) else now
        when = min(when, now)  # a customer's clock ahead of ours must not stretch the window
        doc = await self.context.store.get(namespace, conversation_id)
        if doc is not None and isinstance(doc.value, Mapping):
            when = max(when, float(doc.value.get("last_inbound", 0.0)))
        return Put(namespace=namespace, key=conversation_id, value={"last_inbound": when})

    async def last_inbound(self, conversation_id: str) -> float | None:
        """When the customer last wrote in ``conversation_id`` (Unix seconds), if tracked and known."""
        namespace = self._window_namespace()
        if namespace is None:
            return None
        doc = await self.context.store.get(namespace, conversation_id)
        if doc is None or not isinstance(doc.value, Mapping):
            return None
        return float(doc.value.get("last_inbound", 0.0))

    # -- outbound ----------------------------------------------------------------------------------------

    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        if not isinstance(event, DeliverReply):
            return None  # agent-side events are not for a customer-side connector
        await self._send_reply(event)
        return None

    @abc.abstractmethod
    async def _send_reply(self, event: DeliverReply) -> None:
        """Hook: send the agent's reply to the customer."""

    def _peer(self, conversation: Conversation, prefixes: Sequence[str]) -> tuple[str, str]:
        """(prefix, platform id) of a conversation id such as ``telegram:12345``."""
        prefix, sep, rest = conversation.id.partition(":")
        if not sep or prefix not in prefixes or not rest:
            wanted = " or ".join(f"'{p}:<id>'" for p in prefixes)
            raise ConfigurationError(
                f"conversation {conversation.id!r} has source {conversation.source!r} but its id is not "
                f"{wanted}: the {self.name} connector cannot tell whom to send to"
            )
        return prefix, rest

    async def _parts_done(self, conversation_id: str, message_id: str) -> int:
        doc = await self.context.store.get(f"{self.name}.sent", f"{conversation_id}\x1f{message_id}")
        if doc is None or not isinstance(doc.value, Mapping):
            return 0
        return int(doc.value.get("parts", 0))

    async def _part_sent(self, conversation_id: str, message_id: str, parts: int, remote_id: str | None) -> None:
        # A retried delivery resumes after the parts already sent instead of sending them twice.
        key = f"{conversation_id}\x1f{message_id}"
        await self.context.store.commit(
            Batch(puts=[Put(namespace=f"{self.name}.sent", key=key, value={"parts": parts, "last": remote_id})]),
            now=self.context.now(),
        )

    # -- inbound HTTP ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        """Hook: verify, parse, accept durably, answer."""


def chunk_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line or word break when there is one."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit)
        if cut <= 0:
            cut = rest.rfind(" ", limit // 2, limit)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip("\n ") if cut < limit else rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def str_field(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def int_field(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dict_field(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def list_field(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def skipped(logger: logging.Logger, source: str, what: str, problem: Exception) -> None:
    """Log (WARNING) that one item of a webhook was skipped: the rest of the body is still accepted, and the
    platform, answered 200, does not send the same body again."""
    logger.warning("%s: %s skipped: %s", source, what, problem)


def kinds_shown(keys: Any) -> str:
    """The names of a webhook object's keys, for a log line: only letters, digits, ``_`` and ``-``; at most 8."""
    names = ["".join(c for c in str(k) if c.isalnum() or c in "_-")[:40] for k in list(keys)[:8]]
    return ",".join(n for n in names if n) or "none"


def shown_id(value: Any) -> str:
    """An id from a webhook as it may appear in a log line: at most 40 characters, quoted unless alphanumeric."""
    text = str(value)[:40]
    return text if text.isalnum() else repr(text)


def media_label(media: MediaRef) -> str:
    """What kind of file ``media`` is, in a word: "image", "video", "audio" or "file"."""
    kind = (media.content_type or "").split("/", 1)[0].lower()
    return kind if kind in ("image", "video", "audio") else "file"


def not_fetched_note(media: MediaRef, error: Exception) -> str:
    """The line that stands for a file that could not be fetched: ``[image: not fetched (HTTP 404)]``."""
    kind = media_label(media)
    if isinstance(error, UnsafeUrl):
        return f"[{kind}: not fetched, unsafe URL]"
    code = error.code if isinstance(error, RemoteError) else None
    if code is not None and code.isdigit() and len(code) == 3:
        return f"[{kind}: not fetched (HTTP {code})]"
    reason = {RateLimited: "rate limited", TransportError: "network error", NotFound: "not found"}.get(type(error))
    if reason is None:
        reason = "refused" if isinstance(error, PermissionDenied) else "error"
    return f"[{kind}: not fetched ({reason})]"


def _size(count: int) -> str:
    return f"{count / (1 << 20):g} MB" if count >= 1 << 20 else f"{count} bytes"


def _short_id(value: str) -> str:
    """``value`` when it is a usable id, else a stable digest of it (so that duplicates still match)."""
    if id_problem(value) is None:
        return value
    return raw_digest(value)


def bounded(item: InboundMessage) -> InboundMessage:
    """``item`` within the hub's bounds: an overlong message or delivery id becomes a digest of itself, an overlong
    name or detail is cut; a conversation or user id out of bounds (replies are addressed by it) is refused with
    InvalidRequest (400)."""
    conversation = item.conversation
    user = conversation.user
    for field_name, value in (("conversation id", conversation.id), ("user id", user.id)):
        problem = id_problem(value)
        if problem is not None:
            raise InvalidRequest(f"the {field_name} {problem}")
    details = {
        k[:MAX_DETAIL_KEY_LENGTH]: v[:MAX_DETAIL_VALUE_LENGTH] for k, v in list(user.details.items())[:MAX_DETAILS]
    }
    if len(user.name) > MAX_NAME_LENGTH or details != user.details:
        user = attrs.evolve(user, name=user.name[:MAX_NAME_LENGTH], details=details)
        conversation = attrs.evolve(conversation, user=user)
    return attrs.evolve(
        item,
        event_id=_short_id(item.event_id),
        message_id=_short_id(item.message_id),
        conversation=conversation,
    )
