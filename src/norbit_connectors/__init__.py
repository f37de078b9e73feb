"""norbit_connectors: run customer conversations through Slack.

The host application builds a :class:`Hub` with a store and connectors, and calls it as customers write, agents
answer in the host's dashboard, a chatbot hands over, and conversations are archived. Connectors live in their own
modules (``norbit_connectors.slack``, ``norbit_connectors.channels.*``); this package imports none of them.
"""

from ._connector import Connector, ConversationState, HttpResponse, HubContext
from ._models import (
    Agent,
    AgentReply,
    Assignment,
    Attachment,
    Conversation,
    DeadLetter,
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
from .hub import Hub

__all__ = [
    "Agent",
    "AgentReply",
    "AlreadyClaimed",
    "Assignment",
    "Attachment",
    "ConfigurationError",
    "Connector",
    "ConnectorUnavailable",
    "Conversation",
    "ConversationState",
    "DeadLetter",
    "Delivery",
    "Department",
    "HttpResponse",
    "Hub",
    "HubContext",
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
