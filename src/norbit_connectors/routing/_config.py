"""How conversations reach agents: the :class:`Routing` settings."""

from __future__ import annotations

from typing import Any, Literal

from attrs import Attribute, field, frozen

from ..exceptions import ConfigurationError
from ._office_hours import OfficeHours

__all__ = ["Routing", "RoutingMode"]

RoutingMode = Literal["auto", "manual", "off"]
_MODES = ("auto", "manual", "off")


def _check_mode(_instance: Any, _attribute: Attribute[Any], value: object) -> None:
    if value not in _MODES:
        raise ConfigurationError(f"Routing(mode={value!r}) is not a mode; use 'auto', 'manual' or 'off'")


def _check_max_concurrent(_instance: Any, _attribute: Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"Routing(max_concurrent={value!r}) must be a whole number of at least 1, or None for no cap"
        )


def _check_response_minutes(_instance: Any, _attribute: Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"Routing(response_minutes={value!r}) must be a whole number of minutes, 0 or more")


def _check_office_hours(_instance: Any, _attribute: Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, OfficeHours):
        raise ConfigurationError(f"Routing(office_hours={value!r}) must be an OfficeHours(...) or None (always open)")


@frozen(kw_only=True)
class Routing:
    """Routing settings.

    ``mode``: "auto" assigns each new conversation to the least-loaded eligible online agent; "manual" leaves
    conversations for agents to claim (first claim wins); "off" leaves assignment to the host.
    ``max_concurrent``: per-agent cap for automatic assignment; beyond it conversations wait in a FIFO queue per
    department (None: no cap, no queue). Claims and conversations the host assigns itself are not capped.
    ``response_minutes``: the queue wait estimate is position x response_minutes.
    ``office_hours``: outside them the host is told to send its offline message; None means always open.
    """

    mode: RoutingMode = field(default="auto", validator=_check_mode)
    max_concurrent: int | None = field(default=5, validator=_check_max_concurrent)
    response_minutes: int = field(default=3, validator=_check_response_minutes)
    office_hours: OfficeHours | None = field(default=None, validator=_check_office_hours)
