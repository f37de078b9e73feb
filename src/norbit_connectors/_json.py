"""How deeply a decoded JSON value nests: the bound every webhook handler checks before it reads a body."""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_JSON_DEPTH", "json_depth"]

#: The deepest nesting of lists and objects a webhook body may have; deeper bodies are answered 400.
MAX_JSON_DEPTH = 64


def json_depth(value: Any) -> int:
    """How deeply ``value`` (decoded JSON) nests lists and objects: 0 for a scalar, 1 for ``[]`` or ``{}``.

    Iterative, so that no depth can exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
