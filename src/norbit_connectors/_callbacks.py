"""The host's callbacks must be coroutine functions: checked once, at ``Hub(...)``.

A plain ``def`` would run, then fail where the hub awaits its result, and be retried: run again and again.
Refusing it at start-up is the only safe answer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

from .exceptions import ConfigurationError

__all__ = ["REPORT_SECONDS", "ReportFailed", "is_async_callable", "report", "require_async"]

T = TypeVar("T")

#: Longest time a report-only callback (on_dead_letter) is given.
REPORT_SECONDS = 10.0

# Deep enough for any real chain of partials and wrappers; a cycle cannot hang the check.
_MAX_DEPTH = 16


def is_async_callable(value: object) -> bool:
    """True for what returns an awaitable coroutine when called: an ``async def`` function, a bound ``async``
    method, a :func:`functools.partial` of one, or an object whose class defines ``async def __call__``."""
    for _ in range(_MAX_DEPTH):
        if isinstance(value, functools.partial):
            value = value.func
            continue
        if inspect.iscoroutinefunction(value):
            return True
        if inspect.isroutine(value) or isinstance(value, type) or not callable(value):
            return False
        # An instance: what runs is its class's __call__ (not an attribute set on the instance).
        call: Any = type(value).__call__
        return inspect.iscoroutinefunction(call)
    return False


def require_async(name: str, value: object) -> None:
    """Raise ConfigurationError naming ``name=`` unless ``value`` is None or :func:`is_async_callable`."""
    if value is None or is_async_callable(value):
        return
    what = type(value).__name__ if not callable(value) else getattr(value, "__qualname__", type(value).__name__)
    raise ConfigurationError(
        f"{name}= must be a coroutine function (`async def`), a bound async method or a functools.partial of "
        f"one; got {what!s}, which is not: a plain function would run, then fail where the hub awaits it, "
        "and be retried"
    )


class ReportFailed(Exception):
    """A report-only callback raised, or did not return in time: the report is made again later."""


async def report(name: str, callback: Callable[[T], Awaitable[object]], value: T) -> None:
    """Call a report-only callback, giving it at most :data:`REPORT_SECONDS`. Whatever it raises, and running
    out of time, comes out as :class:`ReportFailed` (which retrying may cure, whatever the callback raised)."""
    try:
        with anyio.move_on_after(REPORT_SECONDS) as scope:
            await callback(value)
    except Exception as exc:
        raise ReportFailed(f"{name} raised {type(exc).__name__}: {exc}") from exc
    if scope.cancelled_caught:
        raise ReportFailed(f"{name} did not return within {REPORT_SECONDS:g}s")
