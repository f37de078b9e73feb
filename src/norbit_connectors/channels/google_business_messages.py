"""Google Business Messages: declared, not available. Constructing :class:`GoogleBusinessMessagesConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["GoogleBusinessMessagesConnector"]

GoogleBusinessMessagesConnector = unavailable(
    "google_business_messages", "Google shut Google Business Messages down in 2024; there is nothing left to connect to"
)
