"""Errors raised by norbit_connectors.

Every error derives from :class:`NorbitError`; each subclass is named for what the caller can do about it::

    NorbitError
    ├── ConfigurationError        the set-up is wrong: fix the configuration (raised at start-up)
    ├── UsageError                a call the hub cannot accept as made (unknown conversation, ...)
    │   └── AlreadyClaimed        manual routing: another agent claimed the conversation first
    ├── RemoteError               the remote refused a call (``code`` says why, ``service`` who)
    │   ├── NotFound              the remote object does not exist (channel, user, chat)
    │   ├── PermissionDenied      the token may not do this (invalid_auth, missing_scope: ``needed``)
    │   ├── RateLimited           slow down; ``retry_after`` seconds
    │   └── TransportError        the remote could not be reached or failed (5xx, reset); retry later
    ├── InvalidRequest            an inbound request is malformed or not authentic (``status`` 400/401/413)
    └── ConnectorUnavailable      the connector exists as a name but is not implemented

Errors never carry secrets: tokens and signing secrets are never part of a message or an attribute.
"""

from __future__ import annotations

__all__ = [
    "AlreadyClaimed",
    "ConfigurationError",
    "ConnectorUnavailable",
    "InvalidRequest",
    "NorbitError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RemoteError",
    "TransportError",
    "UsageError",
]


class NorbitError(Exception):
    """The root of every error this library raises."""


class ConfigurationError(NorbitError):
    """The configuration is wrong. The message says what to change."""


class UsageError(NorbitError):
    """A call that cannot be accepted as made (an unknown conversation id, a value of the wrong shape)."""


class AlreadyClaimed(UsageError):
    """Manual routing: the conversation was claimed by another agent first (``agent_id``)."""

    def __init__(self, conversation_id: str, agent_id: str) -> None:
        super().__init__(f"conversation {conversation_id!r} is already claimed by agent {agent_id!r}")
        self.conversation_id = conversation_id
        self.agent_id = agent_id


class RemoteError(NorbitError):
    """A remote service refused a call. ``code`` is its error code (Slack's ``error`` string, an HTTP status)."""

    def __init__(self, message: str, *, code: str | None = None, service: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.service = service


class NotFound(RemoteError):
    """The remote object does not exist (channel_not_found, user_not_found, a deleted chat)."""


class PermissionDenied(RemoteError):
    """The credentials may not do this: invalid_auth, missing_scope (``needed``), not_allowed_token_type."""

    def __init__(
        self, message: str, *, code: str | None = None, service: str | None = None, needed: str | None = None
    ) -> None:
        super().__init__(message, code=code, service=service)
        self.needed = needed


class RateLimited(RemoteError):
    """Too many calls: wait ``retry_after`` seconds before the next one."""

    def __init__(
        self, message: str, *, retry_after: float, code: str | None = "ratelimited", service: str | None = None
    ) -> None:
        super().__init__(message, code=code, service=service)
        self.retry_after = retry_after


class TransportError(RemoteError):
    """The remote could not be reached, or failed on its side (5xx, connection reset, time-out): retry later."""


class InvalidRequest(NorbitError):
    """An inbound request is malformed (400), not authentic (401) or too large (413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ConnectorUnavailable(NorbitError):
    """The connector is known by name but not implemented yet."""

    def __init__(self, name: str, reason: str = "not implemented yet") -> None:
        super().__init__(f"the {name!r} connector is not available: {reason}")
        self.name = name
        self.reason = reason
