"""Apps that exist as names only: loading one raises ConnectorUnavailable with the reason."""

from __future__ import annotations

from typing import Any, NoReturn

from ..exceptions import ConnectorUnavailable

__all__ = ["UnavailableConnector", "unavailable"]


def unavailable(name: str, reason: str) -> type[Any]:
    """A class standing for the ``name`` connector: constructing it raises ConnectorUnavailable."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConnectorUnavailable(name, reason)

    return type(
        f"{name.title().replace('_', '')}Connector", (UnavailableConnector,), {"__init__": __init__, "app": name}
    )


class UnavailableConnector:
    """Base of the placeholder classes: they cannot be constructed."""

    app = ""

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ConnectorUnavailable(self.app or "unknown")
