"""X (Twitter) direct messages: declared, not available. Constructing :class:`XConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["XConnector"]

XConnector = unavailable("x", "X (Twitter) direct messages is not implemented yet")
