"""Testing kit: test an integration without a Slack workspace.

:class:`SlackEmulator` is a strict local Slack Web API over HTTP that the real ``slack_sdk.WebClient`` talks to;
it also builds the signed requests Slack sends to an app (events, slash commands, button clicks). The pytest
fixture ``slack_emulator`` gives a started one. ``store_conformance`` checks a Store implementation.
"""

from ._slack._events import DeliveryResult, SlackRequest
from ._slack_emulator import DEFAULT_BOT_SCOPES, SlackCall, SlackEmulator

__all__ = ["DEFAULT_BOT_SCOPES", "DeliveryResult", "SlackCall", "SlackEmulator", "SlackRequest"]
