"""The Slack app the connector needs: scopes, events, slash command, interactivity, as a Slack app manifest.

The tables below are the one source of truth for what the connector asks of Slack; ``norbit-connectors doctor``
checks a workspace against the same tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from attrs import frozen

__all__ = [
    "BOT_EVENTS",
    "BOT_SCOPES",
    "METHOD_SCOPES",
    "SLASH_COMMANDS",
    "USER_METHOD_SCOPES",
    "USER_SCOPES",
    "AppManifest",
    "manifest_json",
    "manifest_yaml",
]


@frozen(kw_only=True)
class MethodScopes:
    """The bot scopes a Web API method needs, on public and on private channels."""

    public: tuple[str, ...]
    private: tuple[str, ...]


def _same(*scopes: str) -> MethodScopes:
    return MethodScopes(public=scopes, private=scopes)


#: Every Web API method the connector (and doctor) calls with the bot token -> the bot scopes it needs.
METHOD_SCOPES: Mapping[str, MethodScopes] = MappingProxyType(
    {
        "auth.test": _same(),
        "chat.postMessage": _same("chat:write"),
        "chat.update": _same("chat:write"),
        "chat.postEphemeral": _same("chat:write"),
        "conversations.create": MethodScopes(public=("channels:manage",), private=("groups:write",)),
        "conversations.invite": MethodScopes(public=("channels:manage",), private=("groups:write",)),
        "conversations.archive": MethodScopes(public=("channels:manage",), private=("groups:write",)),
        "conversations.join": _same("channels:join"),
        "conversations.history": MethodScopes(public=("channels:history",), private=("groups:history",)),
        "conversations.info": MethodScopes(public=("channels:read",), private=("groups:read",)),
        "conversations.members": MethodScopes(public=("channels:read",), private=("groups:read",)),
        "conversations.list": MethodScopes(public=("channels:read",), private=("groups:read",)),
        "users.info": _same("users:read"),
        "files.getUploadURLExternal": _same("files:write"),
        "files.completeUploadExternal": _same("files:write"),
    }
)

#: Methods the connector calls with the optional user token -> the user scopes they need.
USER_METHOD_SCOPES: Mapping[str, MethodScopes] = MappingProxyType(
    {
        "auth.test": _same(),
        "conversations.unarchive": MethodScopes(public=("channels:write",), private=("groups:write",)),
        "conversations.invite": MethodScopes(public=("channels:write",), private=("groups:write",)),
    }
)

#: Bot scope -> why the connector needs it (in the order a manifest lists them).
BOT_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        "chat:write": "post customer messages, notice cards and notes (chat.postMessage, chat.update)",
        "chat:write.customize": "post each customer message under the customer's name and picture",
        "channels:manage": "create, invite into and archive public conversation channels",
        "groups:write": "create, invite into and archive private conversation channels",
        "channels:read": "look up public channels (conversations.info, conversations.members)",
        "groups:read": "look up private channels (conversations.info, conversations.members)",
        "channels:join": "join a public channel the bot was removed from",
        "channels:history": "find its own posts again after a crash (conversations.history, public channels)",
        "groups:history": "find its own posts again after a crash, and receive messages of private channels",
        "users:read": "name the agent who answered (users.info)",
        "users:read.email": "match a Slack user to a host agent by email",
        "files:write": "upload customer attachments into the channel",
        "files:read": "download files agents share, to pass them to the customer",
        "commands": "the /archive slash command",
    }
)

#: User scopes of the optional user token (SlackConfig.user_token): unarchive a reopened conversation's channel.
USER_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        "channels:write": "unarchive a public channel when its conversation reopens",
        "groups:write": "unarchive a private channel when its conversation reopens",
    }
)

#: Events API subscriptions of the bot.
BOT_EVENTS: tuple[str, ...] = ("message.channels", "message.groups", "channel_archive", "group_archive")

#: Slash command -> its description and usage hint.
SLASH_COMMANDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"/archive": ("Archive this conversation and its channel", "")}
)

DEFAULT_REQUEST_URL = "https://example.com/slack/events"


@frozen(kw_only=True)
class AppManifest:
    """A Slack app manifest for the connector. ``request_url``: where Slack sends events, slash commands and
    interactivity (the host's ``SlackConnector.handle_http``); ``socket_mode``: no Request URL, Socket Mode."""

    name: str = "Norbit Support"
    request_url: str = DEFAULT_REQUEST_URL
    socket_mode: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (Slack accepts it as JSON or YAML)."""
        name = self.name.strip() or "Norbit Support"
        command: dict[str, Any] = {}
        for slash, (description, hint) in SLASH_COMMANDS.items():
            command = {"command": slash, "description": description, "should_escape": False}
            if hint:
                command["usage_hint"] = hint
            if not self.socket_mode:
                command["url"] = self.request_url
        events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
        interactivity: dict[str, Any] = {"is_enabled": True}
        if not self.socket_mode:
            events = {"request_url": self.request_url, **events}
            interactivity["request_url"] = self.request_url
        return {
            "display_information": {
                "name": name[:35],
                "description": "Customer conversations as Slack channels",
            },
            "features": {
                "bot_user": {"display_name": name[:80], "always_online": True},
                "slash_commands": [command],
            },
            "oauth_config": {
                "scopes": {"bot": list(BOT_SCOPES), "user": list(USER_SCOPES)},
            },
            "settings": {
                "event_subscriptions": events,
                "interactivity": interactivity,
                "org_deploy_enabled": False,
                "socket_mode_enabled": self.socket_mode,
                "token_rotation_enabled": False,
            },
        }


def manifest_json(manifest: AppManifest) -> str:
    """The manifest as indented JSON."""
    return json.dumps(manifest.as_dict(), indent=2, ensure_ascii=False) + "\n"


def manifest_yaml(manifest: AppManifest) -> str:
    """The manifest as YAML (block style; every string double-quoted, so any text is safe)."""
    lines: list[str] = []
    _emit(manifest.as_dict(), 0, lines)
    return "\n".join(lines) + "\n"


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    # A JSON string is a valid YAML double-quoted scalar; characters YAML reads as line breaks or that a terminal
    # would not show are escaped too.
    quoted = json.dumps(str(value), ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if _unsafe(ord(c)) else c for c in quoted)


def _unsafe(code: int) -> bool:
    return 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0x2028, 0x2029, 0xFFFE, 0xFFFF)


def _emit(value: object, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 2, lines)
            else:
                lines.append(f"{pad}{key}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                first = sub[0][indent + 2 :]
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")


def _inline(value: object) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)
