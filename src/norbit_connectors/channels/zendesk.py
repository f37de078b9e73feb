"""Zendesk: declared, not available. Constructing :class:`ZendeskConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["ZendeskConnector"]

ZendeskConnector = unavailable("zendesk", "Zendesk is not implemented yet")
