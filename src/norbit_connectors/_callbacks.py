"""The host's callbacks must be coroutine functions: checked once, at ``Hub(...)``.

A plain ``def`` would run, then fail where the hub awaits its result, and be retried: run again and again.
Refusing it at start-up is the only safe answer.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, overload

import anyio

from .exceptions import ConfigurationError

__all__ = ["REPORT_SECONDS", "Callback", "ReportFailed", "is_async_callable", "report", "require_async"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: Longest time a report-only callback (on_dead_letter) is given.
REPORT_SECONDS = 10.0

# Deep enough for any real chain of partials and ``__call__`` hops (a class whose ``__call__`` is an object of
# another callable class); a cycle (a class whose ``__call__`` is one of its own instances) cannot hang the check.
_MAX_DEPTH = 16


def is_async_callable(value: object) -> bool:
    """True for what returns an awaitable coroutine when called: an ``async def`` function, a bound ``async``
    method, a :func:`functools.partial` of one, or an object whose class's ``__call__`` is one of these (or a
    :class:`functools.partialmethod` of an ``async def``). Chains longer than :data:`_MAX_DEPTH` are refused."""
    for _ in range(_MAX_DEPTH):
        if isinstance(value, functools.partial):
            own = type(value).__call__
            # A subclass's own __call__ is what runs; otherwise the partial calls its function.
            value = own if own is not functools.partial.__call__ else value.func
            continue
        if isinstance(value, functools.partialmethod):
            value = value.func
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
            continue
        if inspect.iscoroutinefunction(value):
            return True
        if inspect.isroutine(value) or isinstance(value, type) or not callable(value):
            return False
        # An instance: what runs is its class's __call__ (not an attribute set on the instance), as defined.
        value = inspect.getattr_static(type(value), "__call__", None)
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


class Callback(Generic[F]):
    """A callback attribute of the hub (``hub.on_agent_reply``): whatever is assigned to it, at ``Hub(...)`` or
    later, is checked by :func:`require_async`, so a plain ``def`` never slips in after the start."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Callback[F]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> F | None: ...

    def __get__(self, obj: object | None, owner: type) -> Callback[F] | F | None:
        if obj is None:
            return self
        value: F | None = obj.__dict__.get(self._name)
        return value

    def __set__(self, obj: object, value: F | None) -> None:
        require_async(self._name, value)
        obj.__dict__[self._name] = value


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
