"""Bounds on what the host hands the hub, checked at the call so that nothing fails later in a worker.

Ids become store keys (SQLite and PostgreSQL text columns), Slack message metadata and the Join button's value
(at most 2,000 characters). They are bounded to :data:`MAX_ID_LENGTH` characters, none of them a control
character (NUL among them, which PostgreSQL text cannot hold) or a lone surrogate (which no UTF-8 database can
store). User fields travel in every job of the conversation and onto the Slack card: they are bounded too.

The ``*_problem`` functions are pure: they return what is wrong with a value, or None. The ``check_*`` functions
raise :class:`~norbit_connectors.UsageError` naming the field and the limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._models import Agent, Conversation, Department, Message, User, to_id
from .exceptions import ConfigurationError, UsageError

__all__ = [
    "MAX_DETAILS",
    "MAX_DETAIL_KEY_LENGTH",
    "MAX_DETAIL_VALUE_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_URL_LENGTH",
    "check_agent",
    "check_configured",
    "check_conversation",
    "check_id",
    "check_message",
    "check_user",
    "details_problem",
    "id_problem",
    "text_problem",
]

#: Longest id (conversation, user, message, agent, department), in characters.
MAX_ID_LENGTH = 128
#: Longest ``User.name``.
MAX_NAME_LENGTH = 1000
#: Longest ``User.email`` (an address is at most 254 characters; a display form may be longer).
MAX_EMAIL_LENGTH = 320
#: Longest ``User.avatar_url``.
MAX_URL_LENGTH = 2048
#: Most entries in ``User.details``, and the longest key and value.
MAX_DETAILS = 50
MAX_DETAIL_KEY_LENGTH = 100
MAX_DETAIL_VALUE_LENGTH = 1000


# Unicode's control characters (category Cc) and surrogates (Cs), as one search each way.
_BAD_IN_IDS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_BAD_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _bad_character(value: str, *, allow_line_breaks: bool) -> str | None:
    found = (_BAD_IN_TEXT if allow_line_breaks else _BAD_IN_IDS).search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X})"
    return f"a control character (U+{code:04X})"


def id_problem(value: object, *, limit: int = MAX_ID_LENGTH) -> str | None:
    """What is wrong with ``value`` as an id, or None: it must be 1 to ``limit`` characters, with no control
    character and no lone surrogate."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters (it has {len(value)})"
    bad = _bad_character(value, allow_line_breaks=False)
    return f"must not contain {bad}" if bad else None


def text_problem(value: object, *, limit: int) -> str | None:
    """What is wrong with ``value`` as a short text field, or None: at most ``limit`` characters, no lone
    surrogate, and no control character other than line breaks and tabs."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if len(value) > limit:
        return f"must be at most {limit} characters (it has {len(value)})"
    bad = _bad_character(value, allow_line_breaks=True)
    return f"must not contain {bad}" if bad else None


def details_problem(details: Mapping[str, str]) -> str | None:
    """What is wrong with ``User.details``, or None (see the ``MAX_DETAIL*`` limits)."""
    if len(details) > MAX_DETAILS:
        return f"must have at most {MAX_DETAILS} entries (it has {len(details)})"
    for key, value in details.items():
        problem = text_problem(key, limit=MAX_DETAIL_KEY_LENGTH)
        if problem is not None:
            return f"keys {problem}"
        problem = text_problem(value, limit=MAX_DETAIL_VALUE_LENGTH)
        if problem is not None:
            return f"values {problem}"
    return None


def _raise(field: str, problem: str | None) -> None:
    if problem is not None:
        raise UsageError(f"{field} {problem}")


def check_id(value: object, field: str) -> str:
    """``value`` (a ``str`` or an ``int``) as a usable id; UsageError naming ``field`` otherwise."""
    try:
        text = to_id(value)  # type: ignore[arg-type]
    except TypeError:
        raise UsageError(f"{field} must be a str or an int, not {type(value).__name__}") from None
    except ValueError:  # an int of more digits than Python will print: far beyond the limit
        raise UsageError(f"{field} must be at most {MAX_ID_LENGTH} characters (it has thousands)") from None
    _raise(field, id_problem(text))
    return text


def check_user(user: User) -> None:
    _raise("User.id", id_problem(user.id))
    _raise("User.name", text_problem(user.name, limit=MAX_NAME_LENGTH))
    if user.email is not None:
        _raise("User.email", text_problem(user.email, limit=MAX_EMAIL_LENGTH))
    if user.avatar_url is not None:
        _raise("User.avatar_url", text_problem(user.avatar_url, limit=MAX_URL_LENGTH))
    _raise("User.details", details_problem(user.details))


def check_conversation(conversation: object) -> Conversation:
    """A conversation the stores and Slack can carry, or UsageError naming the field out of bounds."""
    if not isinstance(conversation, Conversation):
        raise UsageError(f"expected a Conversation, got {type(conversation).__name__}")
    _raise("Conversation.id", id_problem(conversation.id))
    if not isinstance(conversation.user, User):
        raise UsageError(f"Conversation.user must be a User, not {type(conversation.user).__name__}")
    check_user(conversation.user)
    if conversation.department_id is not None:
        _raise("Conversation.department_id", id_problem(conversation.department_id))
    if conversation.agent_id is not None:
        _raise("Conversation.agent_id", id_problem(conversation.agent_id))
    return conversation


def check_message(message: object) -> Message:
    """A message whose id the stores can carry, or UsageError."""
    if not isinstance(message, Message):
        raise UsageError(f"expected a Message, got {type(message).__name__}")
    _raise("Message.id", id_problem(message.id))
    return message


def check_agent(agent: object) -> Agent:
    if not isinstance(agent, Agent):
        raise UsageError(f"expected an Agent, got {type(agent).__name__}")
    _raise("Agent.id", id_problem(agent.id))
    return agent


def check_configured(agents: Mapping[str, Agent], departments: Mapping[str, Department]) -> None:
    """Hub(agents=, departments=): every id usable, else ConfigurationError naming the field."""
    for agent in agents.values():
        problem = id_problem(agent.id)
        if problem is not None:
            raise ConfigurationError(f"Agent.id {problem}")
    for department in departments.values():
        problem = id_problem(department.id)
        if problem is not None:
            raise ConfigurationError(f"Department.id {problem}")
