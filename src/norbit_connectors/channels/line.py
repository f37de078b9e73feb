"""LINE Messaging API: declared, not available. Constructing :class:`LineConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["LineConnector"]

LineConnector = unavailable("line", "LINE Messaging API is not implemented yet")
