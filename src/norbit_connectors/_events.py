"""What the hub asks connectors to do, as values carried in job payloads.

Agent-side connectors (Slack) receive :class:`CustomerMessage`, :class:`AgentMessage`, :class:`BotMessage`,
:class:`Archived`, :class:`AssignmentChanged` and :class:`Notified`; customer-side connectors (Telegram, ...)
receive :class:`DeliverReply`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from attrs import frozen

from ._models import Agent, AgentReply, Assignment, Conversation, Message, converter

__all__ = [
    "AgentMessage",
    "Archived",
    "AssignmentChanged",
    "BotMessage",
    "CustomerMessage",
    "DeliverReply",
    "HubEvent",
    "Notified",
    "TakeOver",
    "decode_event",
    "encode_event",
]


@frozen(kw_only=True)
class CustomerMessage:
    """The customer wrote ``message``. ``reopened``: the conversation was archived and this message reopens it.
    ``replay``: part of the transcript sent at human takeover."""

    conversation: Conversation
    message: Message
    reopened: bool = False
    replay: bool = False


@frozen(kw_only=True)
class AgentMessage:
    """An agent answered in the host's own dashboard: mirror it as the agent."""

    conversation: Conversation
    message: Message
    agent: Agent | None
    replay: bool = False


@frozen(kw_only=True)
class BotMessage:
    """The chatbot answered (relayed only after human takeover, as part of the transcript)."""

    conversation: Conversation
    message: Message
    replay: bool = False


@frozen(kw_only=True)
class TakeOver:
    """A human takes over from the chatbot: open the channel (and notice) if needed. The transcript so far
    follows as replayed messages."""

    conversation: Conversation


@frozen(kw_only=True)
class Archived:
    """The conversation was archived in the host: archive its channel."""

    conversation_id: str


@frozen(kw_only=True)
class AssignmentChanged:
    """Routing assigned, queued or released the conversation."""

    conversation: Conversation
    assignment: Assignment


@frozen(kw_only=True)
class Notified:
    """The host reached the customer by email or SMS with an agent's reply: say so in the channel."""

    conversation_id: str
    notified_by: frozenset[str]


@frozen(kw_only=True)
class DeliverReply:
    """Send an agent's reply to the customer on the app they wrote from."""

    conversation: Conversation
    reply: AgentReply


HubEvent: TypeAlias = (
    TakeOver | CustomerMessage | AgentMessage | BotMessage | Archived | AssignmentChanged | Notified | DeliverReply
)

_KINDS: dict[str, type[Any]] = {
    "take_over": TakeOver,
    "customer_message": CustomerMessage,
    "agent_message": AgentMessage,
    "bot_message": BotMessage,
    "archived": Archived,
    "assignment": AssignmentChanged,
    "notified": Notified,
    "deliver_reply": DeliverReply,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


def encode_event(event: HubEvent) -> tuple[str, dict[str, Any]]:
    """The job kind and JSON payload for ``event``."""
    return _NAMES[type(event)], converter.unstructure(event)


def decode_event(kind: str, payload: Any) -> HubEvent | None:
    """The event of a job, or None when ``kind`` is not a hub event."""
    cls = _KINDS.get(kind)
    if cls is None:
        return None
    event: HubEvent = converter.structure(payload, cls)
    return event
