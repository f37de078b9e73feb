"""The Connector base class, and what the hub lends a connector while it runs.

A connector links the hub to one outside service. Agent-side connectors (Slack) mirror conversations to where
agents work; customer-side connectors (Telegram, WhatsApp, ...) carry customers' messages in and agents' replies
out. Public methods are final and do the shared work once (validation, error mapping, logging); subclasses fill
in the ``_``-prefixed hooks.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, final

from attrs import field, frozen

from ._events import HubEvent, decode_event
from ._models import Agent, Conversation, Department
from .exceptions import ConfigurationError, InvalidRequest, UsageError

if TYPE_CHECKING:
    from .store import Batch, Job, NewJob, Store, TranscriptEntry

__all__ = ["Connector", "ConversationState", "HttpResponse", "HubContext", "Role"]

Role = Literal["agent", "customer"]
log = logging.getLogger("norbit_connectors")


def _freeze_headers(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@frozen(kw_only=True)
class HttpResponse:
    """What to answer an inbound HTTP request with."""

    status: int = 200
    headers: Mapping[str, str] = field(factory=dict, converter=_freeze_headers)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, text: str) -> HttpResponse:
        return cls(status=status, headers={"Content-Type": "text/plain; charset=utf-8"}, body=text.encode())

    @classmethod
    def json(cls, status: int, data: Any) -> HttpResponse:
        import json

        return cls(
            status=status,
            headers={"Content-Type": "application/json; charset=utf-8"},
            body=json.dumps(data, separators=(",", ":")).encode(),
        )


@frozen(kw_only=True)
class ConversationState:
    """What the hub remembers of a conversation."""

    conversation: Conversation
    status: Literal["open", "archived"] = "open"
    taken_over: bool = False
    epoch: int = 0  # +1 at every reopen
    created_at: float = 0.0
    routed: bool = False  # handed to routing (at the first relayed message, or at takeover)

    @property
    def relaying(self) -> bool:
        """True when messages reach the agents (no chatbot, or a human took over)."""
        return not self.conversation.bot_active or self.taken_over


class HubContext(abc.ABC):
    """The hub's services for a running connector."""

    store: Store
    agents: Mapping[str, Agent]
    departments: Mapping[str, Department]

    @abc.abstractmethod
    def now(self) -> float:
        """The hub's clock (Unix seconds)."""

    @abc.abstractmethod
    async def accept_inbound(self, source: str, event_id: str | None, jobs: Sequence[NewJob]) -> bool:
        """Durably accept inbound work. False when (source, event_id) was accepted before (a retry)."""

    @abc.abstractmethod
    async def conversation_state(self, conversation_id: str) -> ConversationState | None:
        """What the hub knows of a conversation, or None."""

    @abc.abstractmethod
    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        """The conversation's transcript so far."""

    @abc.abstractmethod
    def hub_job(self, kind: str, conversation_id: str, payload: Mapping[str, Any]) -> NewJob:
        """A job for the hub itself, to return in a Batch or pass to :meth:`accept_inbound`.

        Kinds and payloads: ``customer_message`` {conversation, message}; ``agent_message`` {conversation,
        message, agent}; ``agent_reply`` {reply, origin}; ``archived_remotely`` {conversation_id};
        ``agent_edit`` {reply}; ``agent_delete`` {conversation_id, message_id}. Values are unstructured with
        ``norbit_connectors._models.converter``."""

    @property
    @abc.abstractmethod
    def routing_mode(self) -> str | None:
        """The hub's routing mode ("auto", "manual", "off"), or None without routing."""

    @abc.abstractmethod
    async def claim(self, conversation_id: str, agent_id: str) -> str:
        """Claim a conversation for ``agent_id`` (manual routing); returns the agent that holds it: the claimer
        if the claim won, else the earlier claimer."""

    @abc.abstractmethod
    def wake(self) -> None:
        """New jobs were written: let the workers look."""


class Connector(abc.ABC):
    """Base class of every connector.

    Subclasses set ``name`` (unique within a hub, and the ``Conversation.source`` a customer-side connector
    serves) and ``role``, and implement :meth:`_deliver`, :meth:`_process` and :meth:`_handle_http`.
    """

    name: ClassVar[str] = ""
    role: ClassVar[Role] = "agent"
    #: Largest inbound body accepted by :meth:`handle_http` (413 beyond it).
    max_body_bytes: ClassVar[int] = 1 << 20

    _context: HubContext | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    @final
    async def start(self, context: HubContext) -> None:
        """Called by the hub on entry: the connector may use ``context`` until :meth:`stop`."""
        if self._context is not None and self._context is not context:
            raise ConfigurationError(f"connector {self.name!r} is already attached to another hub")
        self._context = context
        await self._start()

    @final
    async def stop(self) -> None:
        """Called by the hub on exit."""
        try:
            await self._stop()
        finally:
            self._context = None

    @property
    def context(self) -> HubContext:
        if self._context is None:
            raise UsageError(f"connector {self.name!r} is not running: use it inside `async with hub:`")
        return self._context

    async def _start(self) -> None:  # noqa: B027 - optional hook
        """Hook: open clients, check configuration."""

    async def _stop(self) -> None:  # noqa: B027 - optional hook
        """Hook: close clients."""

    # -- work from the hub -------------------------------------------------------------------------------

    @final
    async def perform(self, job: Job) -> Batch | None:
        """Do one job. Returns writes to store together with the job's completion.

        Raises a :class:`~norbit_connectors.NorbitError` subclass to have the hub retry (RateLimited,
        TransportError, ...) or park the job (PermissionDenied, ConfigurationError).
        """
        event = decode_event(job.kind, job.payload)
        if event is not None:
            return await self._deliver(event, job)
        return await self._process(job)

    @abc.abstractmethod
    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        """Hook: carry out a hub event (post a message, archive a channel, send a reply)."""

    async def _process(self, job: Job) -> Batch | None:
        """Hook: process inbound work this connector accepted through :meth:`HubContext.accept_inbound`."""
        raise UsageError(f"connector {self.name!r} has no job kind {job.kind!r}")

    # -- inbound HTTP ------------------------------------------------------------------------------------

    @final
    async def handle_http(
        self, headers: Mapping[str, str], body: bytes, *, method: str = "POST", query: str = ""
    ) -> HttpResponse:
        """Answer one inbound HTTP request (webhook). Never raises for bad input: answers 4xx instead."""
        if len(body) > self.max_body_bytes:
            return HttpResponse.text(413, "request body too large")
        try:
            return await self._handle_http(headers, body, method=method.upper(), query=query)
        except InvalidRequest as exc:
            log.info("%s: refused inbound request (%s): %s", self.name, exc.status, exc)
            return HttpResponse.text(exc.status, str(exc))

    @abc.abstractmethod
    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        """Hook: verify, parse, accept durably, answer."""
