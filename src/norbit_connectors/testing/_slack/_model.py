"""The emulated workspace's records (mutable, guarded by the emulator's lock)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

__all__ = ["ApiError", "ChannelRecord", "FileRecord", "Identity", "MessageRecord", "UserRecord"]

TokenKind = Literal["bot", "user"]


class ApiError(Exception):
    """A Slack API error: ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@attrs.define(kw_only=True)
class Identity:
    token: str = attrs.field(repr=False)
    kind: TokenKind
    user_id: str
    scopes: frozenset[str]
    revoked: bool = False


@attrs.define(kw_only=True)
class UserRecord:
    id: str
    name: str
    real_name: str
    email: str | None
    is_bot: bool = False
    is_admin: bool = False
    bot_id: str | None = None
    presence: str = "active"
    tz: str = "Europe/London"
    deleted: bool = False
    updated: int = 0


@attrs.define(kw_only=True)
class ChannelRecord:
    id: str
    name: str
    is_private: bool
    created: int
    creator: str
    is_archived: bool = False
    is_general: bool = False
    members: list[str] = attrs.Factory(list)
    topic: dict[str, Any] = attrs.Factory(lambda: {"value": "", "creator": "", "last_set": 0})
    purpose: dict[str, Any] = attrs.Factory(lambda: {"value": "", "creator": "", "last_set": 0})
    previous_names: list[str] = attrs.Factory(list)
    updated: int = 0
    last_ts: int = 0


@attrs.define(kw_only=True)
class MessageRecord:
    ts: str
    channel: str
    user: str
    text: str
    bot_id: str | None = None
    app_id: str | None = None
    subtype: str | None = None
    username: str | None = None
    icons: dict[str, str] | None = None
    blocks: list[dict[str, Any]] | None = None
    attachments: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    files: list[str] = attrs.Factory(list)
    edited: dict[str, str] | None = None
    client_msg_id: str | None = None
    reactions: dict[str, list[str]] = attrs.Factory(dict)
    author: str = ""


@attrs.define(kw_only=True)
class FileRecord:
    id: str
    name: str
    title: str
    user: str
    created: int
    length: int
    upload_key: str
    alt_txt: str | None = None
    content: bytes | None = None
    mimetype: str = "application/octet-stream"
    completed: bool = False
    channels: list[str] = attrs.Factory(list)
