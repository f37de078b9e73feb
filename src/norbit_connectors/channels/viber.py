"""Viber: declared, not available. Constructing :class:`ViberConnector` raises
:class:`~norbit_connectors.ConnectorUnavailable`."""

from __future__ import annotations

from ._unavailable import unavailable

__all__ = ["ViberConnector"]

ViberConnector = unavailable("viber", "Viber is not implemented yet")
