"""The values that flow between the host, the hub and the connectors.

Every model is an attrs class, frozen and keyword-only: build them with keywords, compare them by value, keep
them in sets and dicts.  Ids accept ``int`` as well (a database key) and are kept as ``str``, so that
``Conversation(id=42)`` and ``Conversation(id="42")`` are the same conversation.  :data:`converter` is the one
cattrs converter every store uses to turn them into JSON compatible data and back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

import cattrs
from attrs import field, frozen
from cattrs.preconf.json import make_converter as make_json_converter

__all__ = [
    "Agent",
    "AgentReply",
    "Assignment",
    "Attachment",
    "Conversation",
    "DeadLetter",
    "Delivery",
    "Department",
    "Message",
    "User",
    "converter",
]


def to_id(value: str | int) -> str:
    """An id as text: a ``str`` as it is, an ``int`` (a database key) in decimal. Anything else is a TypeError;
    an int of more digits than Python prints (:func:`sys.get_int_max_str_digits`) a ValueError.

    An int subclass is keyed by its value, whatever its ``__str__`` says."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    raise TypeError(f"an id must be a str or an int, not {type(value).__name__}")


def to_optional_id(value: str | int | None) -> str | None:
    """:func:`to_id`, with None kept."""
    return None if value is None else to_id(value)


def _freeze_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _freeze_set(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError("expected a collection of ids, not a single string")
    return frozenset(value)


def _freeze_ids(value: Iterable[str | int]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError("expected a collection of ids, not a single string")
    return frozenset(to_id(v) for v in value)


def _to_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


@frozen(kw_only=True)
class User:
    """The customer behind a conversation.

    ``details`` holds free-form fields (location, browser, plan, ...) that the Slack notice card may show; only the
    fields named in ``SlackConfig.user_details`` ever leave the host.
    """

    id: str = field(converter=to_id)
    name: str
    email: str | None = None
    avatar_url: str | None = None
    details: Mapping[str, str] = field(factory=dict, converter=_freeze_mapping, eq=False, hash=False)

    # Mappings are not hashable; compare and hash on a sorted item tuple instead.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return (self.id, self.name, self.email, self.avatar_url, dict(self.details)) == (
            other.id,
            other.name,
            other.email,
            other.avatar_url,
            dict(other.details),
        )

    def __hash__(self) -> int:
        return hash((self.id, self.name, self.email, self.avatar_url, tuple(sorted(self.details.items()))))


@frozen(kw_only=True)
class Agent:
    """A member of the support team, as the host knows them."""

    id: str = field(converter=to_id)
    name: str
    email: str | None = None
    department_ids: frozenset[str] = field(factory=frozenset, converter=_freeze_ids)
    is_admin: bool = False


@frozen(kw_only=True)
class Department:
    """A team conversations can be routed to (sales, billing, ...)."""

    id: str = field(converter=to_id)
    name: str


@frozen(kw_only=True)
class Attachment:
    """A file: either a ``url`` to link to, or its ``content`` as bytes (uploaded), or both."""

    name: str
    url: str | None = None
    content: bytes | None = field(default=None, repr=lambda b: "None" if b is None else f"<{len(b)} bytes>")
    content_type: str | None = None


@frozen(kw_only=True)
class Message:
    """One message of a conversation. ``id`` is the host's id, unique within the conversation."""

    id: str = field(converter=to_id)
    text: str
    attachments: tuple[Attachment, ...] = field(default=(), converter=_to_tuple)


@frozen(kw_only=True)
class Conversation:
    """A customer conversation.

    ``source`` says where the customer writes from ("web", "email", "whatsapp", ...). ``bot_active`` means a
    chatbot answers: nothing reaches the agents until :meth:`Hub.start_human_takeover`.
    """

    id: str = field(converter=to_id)
    user: User
    department_id: str | None = field(default=None, converter=to_optional_id)
    agent_id: str | None = field(default=None, converter=to_optional_id)
    source: str = "web"
    bot_active: bool = False


@frozen(kw_only=True)
class AgentReply:
    """An agent answered from the agent side (Slack): the host sends ``message`` to the customer.

    ``agent`` is the host agent the Slack user maps to, or None when the Slack user is not linked to any.
    """

    conversation_id: str = field(converter=to_id)
    message: Message
    agent: Agent | None
    slack_user_id: str | None


@frozen(kw_only=True)
class Delivery:
    """What the host used to reach the customer with an agent's reply: ``{"push", "email", "sms"}``."""

    notified_by: frozenset[str] = field(factory=frozenset, converter=_freeze_set)


@frozen(kw_only=True)
class Assignment:
    """Where a conversation stands in routing.

    ``agent_id`` is set once assigned; while queued, ``queue_position`` (1 = next) and ``wait_minutes`` (position
    x response minutes) are set instead. ``event`` says what just happened.
    """

    conversation_id: str
    agent_id: str | None
    queue_position: int | None
    wait_minutes: int | None
    event: Literal["assigned", "queued", "queue_moved", "claimed", "unassigned"] = "assigned"
    department_id: str | None = None


@frozen(kw_only=True)
class DeadLetter:
    """A job parked because it can never succeed as it is: ``reason`` says why (never a secret).

    ``id`` (also ``job_id``) names it for :meth:`Hub.retry_dead_letter`; ``connector`` and ``kind`` say what the
    job was; ``conversation_id`` is its conversation, when it has one; ``attempts`` counts its tries;
    ``parked_at`` is when it was parked (Unix seconds), as the store records it in the parked job's
    ``not_before``; a job parked by a store that did not record it (before this field existed) shows the time
    its last attempt was due instead. None only for a ``DeadLetter`` built without it.
    """

    id: int
    connector: str
    kind: str
    conversation_id: str | None
    reason: str
    attempts: int
    parked_at: float | None = None

    @property
    def job_id(self) -> int:
        return self.id


def _make_converter() -> cattrs.Converter:
    # The JSON preset turns sets into lists and bytes into text; the hooks below keep frozen mappings plain.
    conv = make_json_converter()
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, MappingProxyType), lambda m: dict(m)
    )

    def unstructure_user(user: User) -> dict[str, Any]:
        return {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "avatar_url": user.avatar_url,
            "details": dict(user.details),
        }

    conv.register_unstructure_hook(User, unstructure_user)
    return conv


#: The converter every store uses: ``converter.unstructure(model)`` gives JSON-compatible data,
#: ``converter.structure(data, Model)`` the model back.
converter: cattrs.Converter = _make_converter()
