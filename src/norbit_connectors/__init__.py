"""norbit_connectors: run customer conversations through Slack."""

from ._models import (
    Agent,
    AgentReply,
    Assignment,
    Attachment,
    Conversation,
    Delivery,
    Department,
    Message,
    User,
)
from .exceptions import (
    AlreadyClaimed,
    ConfigurationError,
    ConnectorUnavailable,
    InvalidRequest,
    NorbitError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    TransportError,
    UsageError,
)

__all__ = [
    "Agent",
    "AgentReply",
    "AlreadyClaimed",
    "Assignment",
    "Attachment",
    "ConfigurationError",
    "ConnectorUnavailable",
    "Conversation",
    "Delivery",
    "Department",
    "InvalidRequest",
    "Message",
    "NorbitError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RemoteError",
    "TransportError",
    "UsageError",
    "User",
]
__version__ = "0.1.0"
