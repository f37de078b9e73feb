"""Routing: departments, automatic assignment with a per-agent cap and queue, manual claims, office hours.

:class:`Routing` is the configuration the hub takes; :class:`RoutingEngine` is the pure decision engine behind
it (no I/O, no clock reads: the caller passes ``now``); :class:`OfficeHours` is a weekly timetable in a time zone.
"""

from ._config import Routing, RoutingMode
from ._engine import RoutingEngine
from ._office_hours import WEEKDAYS, OfficeHours

__all__ = ["WEEKDAYS", "OfficeHours", "Routing", "RoutingEngine", "RoutingMode"]
