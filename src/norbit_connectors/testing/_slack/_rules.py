"""Pure validation rules of the Slack Web API, as the emulator enforces them."""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_CHANNEL_NAME",
    "MAX_TEXT",
    "ArgError",
    "arg_bool",
    "arg_int",
    "arg_list",
    "arg_str",
    "channel_name_error",
    "format_ts",
    "parse_blocks",
    "parse_metadata",
]

MAX_CHANNEL_NAME = 80
MAX_TEXT = 40_000
MAX_BLOCKS = 50
_ALLOWED_PUNCTUATION = "-_"
_ASCII_ALLOWED = set(string.ascii_lowercase + string.digits + _ALLOWED_PUNCTUATION)


class ArgError(Exception):
    """An argument is invalid; ``code`` is the Slack error string."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def channel_name_error(name: object) -> str | None:
    """The Slack error code for an invalid channel name, or ``None`` if ``name`` is valid.

    Slack's rules: required; at most 80 characters; lowercase letters, digits, hyphens and underscores only (no
    spaces, periods or upper case); not made of punctuation alone.
    """
    if not isinstance(name, str):
        return "invalid_name"
    if name == "":
        return "invalid_name_required"
    if len(name) > MAX_CHANNEL_NAME:
        return "invalid_name_maxlength"
    for char in name:
        if char in _ASCII_ALLOWED:
            continue
        # Slack also accepts letters of caseless scripts and lowercase non-ASCII letters.
        if char.isalpha() and not char.isupper() and char.lower() == char and not char.isascii():
            continue
        return "invalid_name_specials"
    if all(char in _ALLOWED_PUNCTUATION for char in name):
        return "invalid_name_punctuation"
    return None


def format_ts(micros: int) -> str:
    """Slack's message timestamp: seconds, a dot, six digits of microseconds."""
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def arg_str(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ArgError("invalid_arguments", f"{name} must be a string")


def arg_bool(args: Mapping[str, Any], name: str) -> bool:
    value = args.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    raise ArgError("invalid_arguments", f"{name} must be a boolean")


def arg_int(args: Mapping[str, Any], name: str, default: int) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ArgError("invalid_arguments", f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ArgError("invalid_arguments", f"{name} must be an integer")


def arg_list(args: Mapping[str, Any], name: str) -> list[str]:
    """A list argument: comma-joined in forms, possibly a JSON array in JSON bodies."""
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ArgError("invalid_arguments", f"{name} must be a list of strings")
        return [item.strip() for item in value if item.strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise ArgError("invalid_arguments", f"{name} must be a comma-separated list")


def _json_value(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ArgError("invalid_json") from None
    return value


def parse_blocks(value: object) -> list[dict[str, Any]] | None:
    """Blocks as a list of objects with a ``type``; a JSON string is decoded first."""
    if value is None or value == "":
        return None
    try:
        decoded = _json_value(value)
    except ArgError:
        raise ArgError("invalid_blocks_format") from None
    if not isinstance(decoded, list):
        raise ArgError("invalid_blocks_format")
    if len(decoded) > MAX_BLOCKS:
        raise ArgError("invalid_blocks", f"at most {MAX_BLOCKS} blocks")
    blocks: list[dict[str, Any]] = []
    for block in decoded:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ArgError("invalid_blocks", "every block needs a type")
        blocks.append(block)
    return blocks or None


def parse_metadata(value: object) -> dict[str, Any] | None:
    """Message metadata ``{"event_type": str, "event_payload": {...}}``; a JSON string is decoded first."""
    if value is None or value == "":
        return None
    try:
        decoded = _json_value(value)
    except ArgError:
        raise ArgError("invalid_metadata_format") from None
    if not isinstance(decoded, dict):
        raise ArgError("invalid_metadata_format")
    event_type = decoded.get("event_type")
    payload = decoded.get("event_payload", {})
    if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
        raise ArgError("invalid_metadata_format")
    return {"event_type": event_type, "event_payload": payload}
