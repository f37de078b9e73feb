"""``async with hub:`` lets a single exception out as itself.

The hub runs its workers in a task group, and a task group reports what went wrong as an ``ExceptionGroup``,
even when one thing did: the body's ``UsageError`` would reach the host wrapped, past its ``except UsageError:``.
:func:`lone_exception` finds the one exception of such a group; several stay grouped.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["lone_exception", "reraise"]


def lone_exception(error: BaseException) -> BaseException | None:
    """The exception inside ``error`` when ``error`` is a group of exactly one, else None.

    Only the task group's own layer is taken off: a group the body raised itself comes out as it was raised.
    """
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return error.exceptions[0]
    return None


def reraise(error: BaseException) -> NoReturn:
    """Raise ``error`` as it was, keeping the exception it was raised during (``__context__``) rather than the
    group it is taken from."""
    context = error.__context__
    try:
        raise error
    finally:
        error.__context__ = context
        del error, context
