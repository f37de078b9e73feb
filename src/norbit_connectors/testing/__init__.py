"""Testing kit: test an integration without a Slack workspace.

:class:`SlackEmulator` is a strict local Slack Web API over HTTP that the real ``slack_sdk.WebClient`` talks to;
it also builds the signed requests Slack sends to an app (events, slash commands, button clicks). The pytest
fixture ``slack_emulator`` gives a started one. :class:`TelegramEmulator` and :class:`MetaEmulator` (WhatsApp,
Messenger, Instagram) do the same for the customer-side apps. ``store_conformance`` and ``connector_conformance``
are test suites a Store or a Connector of your own can reuse.
"""

from typing import Any

from ._meta import MetaEmulator
from ._slack._events import DeliveryResult, SlackRequest
from ._slack_emulator import DEFAULT_BOT_SCOPES, SlackCall, SlackEmulator
from ._telegram import TelegramEmulator

WhatsAppEmulator = MetaEmulator

__all__ = [
    "DEFAULT_BOT_SCOPES",
    "DeliveryResult",
    "MetaEmulator",
    "SlackCall",
    "SlackEmulator",
    "SlackRequest",
    "TelegramEmulator",
    "WhatsAppEmulator",
    "connector_conformance",
    "store_conformance",
]


def __getattr__(name: str) -> Any:
    # The conformance suites need pytest; import them only when asked for.
    if name in ("connector_conformance", "store_conformance"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
