"""The Slack connector: every customer conversation as a Slack channel, agents answering from Slack."""

from ._blocks import JOIN_ACTION_ID, OPEN_ACTION_ID
from ._config import SlackConfig
from ._connector import METADATA_EVENT_TYPE, SlackConnector
from ._limits import SlackLimiter
from .socket_mode import SocketModeReceiver

__all__ = [
    "JOIN_ACTION_ID",
    "METADATA_EVENT_TYPE",
    "OPEN_ACTION_ID",
    "SlackConfig",
    "SlackConnector",
    "SlackLimiter",
    "SocketModeReceiver",
]
