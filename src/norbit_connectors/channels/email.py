"""email piping: declared, not available. Constructing :class:`EmailConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["EmailConnector"]

EmailConnector = unavailable("email", "email piping is not implemented yet")
