"""The emulated workspace and the Web API methods it serves (no I/O; the server calls :meth:`Workspace.call`)."""

from __future__ import annotations

import base64
import json
import mimetypes
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ...exceptions import UsageError
from ._model import ApiError, ChannelRecord, FileRecord, Identity, MessageRecord, UserRecord
from ._rules import (
    MAX_TEXT,
    ArgError,
    arg_bool,
    arg_int,
    arg_list,
    arg_str,
    channel_name_error,
    format_ts,
    parse_blocks,
    parse_metadata,
)

__all__ = ["DEFAULT_BOT_SCOPES", "DEFAULT_USER_SCOPES", "METHODS", "MethodSpec", "Workspace"]

#: Every scope the connector needs; the emulator's bot token has these unless told otherwise.
DEFAULT_BOT_SCOPES = frozenset(
    {
        "chat:write",
        "chat:write.customize",
        "channels:manage",
        "groups:write",
        "channels:read",
        "groups:read",
        "channels:join",
        "channels:history",
        "groups:history",
        "users:read",
        "users:read.email",
        "files:write",
        "files:read",
        "commands",
        "reactions:write",
    }
)
#: The installing user's token (user scopes: channels:write / groups:write allow unarchiving).
DEFAULT_USER_SCOPES = frozenset(
    {
        "chat:write",
        "channels:write",
        "groups:write",
        "channels:read",
        "groups:read",
        "channels:history",
        "groups:history",
        "users:read",
        "users:read.email",
        "files:write",
        "files:read",
        "reactions:write",
    }
)

# Scope alternatives per token kind and channel type ("public"/"private"); the first one is reported as needed.
Scopes = Mapping[str, Mapping[str, tuple[str, ...]]]
_MANAGE: Scopes = {
    "bot": {"public": ("channels:manage", "channels:write"), "private": ("groups:write",)},
    "user": {"public": ("channels:write",), "private": ("groups:write",)},
}
_TOPIC: Scopes = {
    "bot": {
        "public": ("channels:manage", "channels:write.topic", "channels:write"),
        "private": ("groups:write", "groups:write.topic"),
    },
    "user": {"public": ("channels:write", "channels:write.topic"), "private": ("groups:write", "groups:write.topic")},
}
_INVITE: Scopes = {
    "bot": {
        "public": ("channels:manage", "channels:write.invites", "channels:write"),
        "private": ("groups:write", "groups:write.invites"),
    },
    "user": {
        "public": ("channels:write", "channels:write.invites"),
        "private": ("groups:write", "groups:write.invites"),
    },
}
_READ: Scopes = {
    "bot": {"public": ("channels:read",), "private": ("groups:read",)},
    "user": {"public": ("channels:read",), "private": ("groups:read",)},
}
_HISTORY: Scopes = {
    "bot": {"public": ("channels:history",), "private": ("groups:history",)},
    "user": {"public": ("channels:history",), "private": ("groups:history",)},
}
_JOIN: Scopes = {
    "bot": {"public": ("channels:join",), "private": ("channels:join",)},
    "user": {"public": ("channels:write",), "private": ("channels:write",)},
}


def _same(*scopes: str) -> Scopes:
    return {kind: {"public": scopes, "private": scopes} for kind in ("bot", "user")}


@attrs.frozen(kw_only=True)
class MethodSpec:
    name: str
    tier: int | None  # None: special limits (chat.postMessage is limited per channel)
    required: tuple[str, ...]
    scopes: Scopes | None
    missing_code: str = "invalid_arguments"
    channel_scoped: bool = False


def _spec(name: str, tier: int | None, required: tuple[str, ...], scopes: Scopes | None, **kw: Any) -> MethodSpec:
    return MethodSpec(name=name, tier=tier, required=required, scopes=scopes, **kw)


# Tiers and required arguments follow Slack's method reference.
METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        _spec("auth.test", 4, (), None),
        _spec("apps.connections.open", 3, (), None),  # app-level tokens only: served by the emulator itself
        _spec("conversations.create", 2, ("name",), _MANAGE, missing_code="missing_argument"),
        _spec("conversations.join", 3, ("channel",), _JOIN, channel_scoped=True),
        _spec("conversations.invite", 3, ("channel", "users"), _INVITE, channel_scoped=True),
        _spec("conversations.kick", 3, ("channel",), _MANAGE, channel_scoped=True),
        _spec("conversations.archive", 2, ("channel",), _MANAGE, channel_scoped=True),
        _spec("conversations.unarchive", 2, ("channel",), _MANAGE, channel_scoped=True),
        _spec("conversations.rename", 2, ("channel", "name"), _MANAGE, channel_scoped=True),
        _spec("conversations.setTopic", 2, ("channel", "topic"), _TOPIC, channel_scoped=True),
        _spec("conversations.setPurpose", 2, ("channel", "purpose"), _TOPIC, channel_scoped=True),
        _spec("conversations.info", 3, ("channel",), _READ, channel_scoped=True),
        _spec("conversations.members", 4, ("channel",), _READ, channel_scoped=True),
        _spec("conversations.list", 2, (), _READ),
        _spec("conversations.history", 3, ("channel",), _HISTORY, channel_scoped=True),
        _spec("conversations.replies", 3, ("channel", "ts"), _HISTORY, channel_scoped=True),
        _spec("chat.postMessage", None, ("channel",), _same("chat:write"), channel_scoped=True),
        _spec("chat.update", 3, ("channel", "ts"), _same("chat:write"), channel_scoped=True),
        _spec("chat.delete", 3, ("channel", "ts"), _same("chat:write"), channel_scoped=True),
        _spec("chat.postEphemeral", 4, ("channel", "user"), _same("chat:write"), channel_scoped=True),
        _spec("reactions.add", 3, ("channel", "name", "timestamp"), _same("reactions:write"), channel_scoped=True),
        _spec("users.info", 4, ("user",), _same("users:read")),
        _spec("users.lookupByEmail", 3, ("email",), _same("users:read.email")),
        _spec("users.getPresence", 3, (), _same("users:read")),
        _spec(
            "files.getUploadURLExternal",
            4,
            ("filename", "length"),
            _same("files:write"),
            missing_code="missing_argument",
        ),
        _spec("files.completeUploadExternal", 4, ("files",), _same("files:write")),
    )
}

MAX_TOPIC = 250


def _missing(value: object) -> bool:
    # Present but empty is not missing: it gets the method's own error (invalid_name_required, ...).
    return value is None


class Workspace:
    """One Slack workspace with its app installed: users, channels, messages, files and tokens."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        seed: int,
        team_id: str,
        team_domain: str,
        bot_name: str,
        bot_scopes: frozenset[str],
        user_scopes: frozenset[str],
        base_url: Callable[[], str],
    ) -> None:
        self._clock = clock
        self._random = random.Random(seed)
        self._base_url = base_url
        self._counters: dict[str, int] = {}
        self._last_micros = 0
        self.team_id = team_id
        self.team_domain = team_domain
        self.app_id = self._new_id("A")
        self.users: dict[str, UserRecord] = {}
        self.channels: dict[str, ChannelRecord] = {}
        self.messages: dict[str, list[MessageRecord]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.files: dict[str, FileRecord] = {}
        self.uploads: dict[str, str] = {}
        self.identities: dict[str, Identity] = {}
        # Events Slack would send the app because of Web API calls (the app's own posts, archives, ...).
        self.emitted: list[dict[str, Any]] = []

        self.bot_id = self._new_id("B")
        self.bot_user_id = self.add_user(bot_name, real_name=bot_name, is_bot=True)
        self.users[self.bot_user_id].bot_id = self.bot_id
        self.bot_name = bot_name
        self.installer_user_id = self.add_user(
            "installer", email="installer@example.com", real_name="Workspace Installer", is_admin=True
        )
        self.bot_token = self._issue_token("bot", self.bot_user_id, bot_scopes)
        self.user_token = self._issue_token("user", self.installer_user_id, user_scopes)
        self.general_id = self.add_channel(
            "general", members=[self.installer_user_id], is_general=True, creator=self.installer_user_id
        )

    # ---------------------------------------------------------------- identifiers and time

    def _new_id(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{prefix}0{count:08X}"

    def random_hex(self, length: int) -> str:
        return "".join(self._random.choice("0123456789abcdef") for _ in range(length))

    def random_token(self, prefix: str) -> str:
        digits = "".join(self._random.choice("0123456789") for _ in range(13))
        return f"{prefix}-{digits}-{self.random_hex(24)}"

    def now(self) -> int:
        return int(self._clock())

    def next_ts(self, channel: ChannelRecord | None = None) -> str:
        # Globally increasing, hence strictly increasing per channel, even with a frozen clock.
        micros = max(int(self._clock() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        if channel is not None:
            channel.last_ts = micros
        return format_ts(micros)

    def _issue_token(self, kind: str, user_id: str, scopes: frozenset[str]) -> str:
        token = self.random_token("xoxb" if kind == "bot" else "xoxp")
        self.identities[token] = Identity(
            token=token, kind="bot" if kind == "bot" else "user", user_id=user_id, scopes=scopes
        )
        return token

    # ---------------------------------------------------------------- seeding

    def add_user(
        self,
        name: str,
        *,
        email: str | None = None,
        real_name: str | None = None,
        is_bot: bool = False,
        is_admin: bool = False,
        presence: str = "active",
        tz: str = "Europe/London",
        user_id: str | None = None,
    ) -> str:
        if not isinstance(name, str) or not name:
            raise UsageError("a user needs a non-empty name")
        if presence not in ("active", "away"):
            raise UsageError("presence is 'active' or 'away'")
        new_id = user_id or self._new_id("U")
        if new_id in self.users:
            raise UsageError(f"user {new_id} exists already")
        if email is not None and any(user.email == email for user in self.users.values()):
            raise UsageError(f"another user has the email {email}")
        self.users[new_id] = UserRecord(
            id=new_id,
            name=name,
            real_name=real_name if real_name is not None else name,
            email=email,
            is_bot=is_bot,
            is_admin=is_admin,
            presence=presence,
            tz=tz,
            updated=self.now(),
        )
        return new_id

    def add_channel(
        self,
        name: str,
        *,
        is_private: bool = False,
        members: list[str] | tuple[str, ...] = (),
        is_general: bool = False,
        creator: str | None = None,
    ) -> str:
        error = channel_name_error(name)
        if error is not None:
            raise UsageError(f"invalid channel name {name!r}: {error}")
        if self.find_channel(name) is not None:
            raise UsageError(f"a channel named {name!r} exists already")
        for member in members:
            self.require_user(member)
        channel = ChannelRecord(
            id=self._new_id("C"),
            name=name,
            is_private=is_private,
            created=self.now(),
            creator=creator or self.installer_user_id,
            is_general=is_general,
            members=list(dict.fromkeys(members)),
            updated=self.now() * 1000,
        )
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        return channel.id

    def require_user(self, user_id: str) -> UserRecord:
        user = self.users.get(user_id)
        if user is None:
            raise UsageError(f"no user {user_id!r} in the emulated workspace")
        return user

    def require_channel(self, channel: str) -> ChannelRecord:
        record = self.channels.get(channel) or self.find_channel(channel.lstrip("#"))
        if record is None:
            raise UsageError(f"no channel {channel!r} in the emulated workspace")
        return record

    def find_channel(self, name: str) -> ChannelRecord | None:
        for record in self.channels.values():
            if record.name == name:
                return record
        return None

    # ---------------------------------------------------------------- dispatch

    def identity(self, token: str | None) -> Identity:
        if not token:
            raise ApiError("not_authed")
        identity = self.identities.get(token)
        if identity is None:
            raise ApiError("invalid_auth")
        if identity.revoked:
            raise ApiError("token_revoked")
        return identity

    def call(self, spec: MethodSpec, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        """Run one method; raise :class:`ApiError` for a Slack error."""
        # conversations.create: the channel type to be is known from the arguments.
        kind = None
        if spec.name == "conversations.create":
            kind = "private" if arg_bool(args, "is_private") else "public"
        self._check_scope(spec, identity, kind)
        for name in spec.required:
            if _missing(args.get(name)):
                if spec.channel_scoped and name == "channel":
                    raise ApiError("channel_not_found")
                if name == "user":
                    raise ApiError("user_not_found")
                if spec.missing_code == "missing_argument":
                    raise ApiError("missing_argument")
                raise ApiError(
                    "invalid_arguments",
                    response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
                )
        handler: Callable[[Identity, Mapping[str, Any]], dict[str, Any]] = getattr(
            self, "_m_" + spec.name.replace(".", "_")
        )
        try:
            return handler(identity, args)
        except ArgError as exc:
            extra: dict[str, Any] = {}
            if exc.detail:
                extra["response_metadata"] = {"messages": [f"[ERROR] {exc.detail}"]}
            raise ApiError(exc.code, **extra) from None

    def _check_scope(self, spec: MethodSpec, identity: Identity, channel_type: str | None) -> None:
        if spec.scopes is None:
            return
        by_type = spec.scopes[identity.kind]
        types = [channel_type] if channel_type is not None else ["public", "private"]
        accepted = {scope for kind in types for scope in by_type[kind]}
        if accepted & identity.scopes:
            return
        needed = sorted(dict.fromkeys(by_type[kind][0] for kind in types))
        raise ApiError("missing_scope", needed=",".join(needed), provided=",".join(sorted(identity.scopes)))

    def _channel(
        self, spec: MethodSpec, identity: Identity, args: Mapping[str, Any], *, by_name: bool = False
    ) -> ChannelRecord:
        key = arg_str(args, "channel") or ""
        record = self.channels.get(key)
        if record is None and by_name:
            record = self.find_channel(key.lstrip("#"))
        # Private channels are invisible to non-members.
        if record is None or (record.is_private and identity.user_id not in record.members):
            raise ApiError("channel_not_found")
        self._check_scope(spec, identity, "private" if record.is_private else "public")
        return record

    # ---------------------------------------------------------------- rendering

    def render_channel(self, record: ChannelRecord, viewer: str | None) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": record.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": record.is_private,
            "created": record.created,
            "is_archived": record.is_archived,
            "is_general": record.is_general,
            "unlinked": 0,
            "name_normalized": record.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_ext_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": self.team_id,
            "shared_team_ids": [self.team_id],
            "updated": record.updated,
            "creator": record.creator,
            "is_member": viewer in record.members,
            "topic": dict(record.topic),
            "purpose": dict(record.purpose),
            "previous_names": list(record.previous_names),
        }

    def bot_profile(self) -> dict[str, Any]:
        icon = f"{self._base_url()[: -len('api/')]}static/bot_{{}}.png"
        return {
            "id": self.bot_id,
            "deleted": False,
            "name": self.bot_name,
            "updated": self.users[self.bot_user_id].updated,
            "app_id": self.app_id,
            "icons": {size: icon.format(size[6:]) for size in ("image_36", "image_48", "image_72")},
            "team_id": self.team_id,
        }

    def render_message(self, message: MessageRecord, *, metadata: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message"}
        if message.subtype:
            out["subtype"] = message.subtype
        out["text"] = message.text
        out["user"] = message.user
        if message.bot_id:
            out["bot_id"] = message.bot_id
            out["app_id"] = message.app_id
            out["bot_profile"] = self.bot_profile()
        if message.client_msg_id:
            out["client_msg_id"] = message.client_msg_id
        out["ts"] = message.ts
        out["team"] = self.team_id
        if message.username is not None:
            out["username"] = message.username
        if message.icons:
            out["icons"] = dict(message.icons)
        if message.blocks is not None:
            out["blocks"] = message.blocks
        if message.attachments is not None:
            out["attachments"] = message.attachments
        if message.files:
            out["files"] = [self.render_file(self.files[file_id]) for file_id in message.files]
            out["upload"] = message.bot_id is None
            out["display_as_bot"] = False
        if message.edited is not None:
            out["edited"] = dict(message.edited)
        if metadata and message.metadata is not None:
            out["metadata"] = message.metadata
        if message.thread_ts is not None:
            out["thread_ts"] = message.thread_ts
            if message.thread_ts != message.ts:
                parent = self._message(message.channel, message.thread_ts)
                out["parent_user_id"] = parent.user if parent else message.user
            else:
                replies = self._replies(message.channel, message.ts)
                users = list(dict.fromkeys(reply.user for reply in replies))
                out["reply_count"] = len(replies)
                out["reply_users_count"] = len(users)
                out["reply_users"] = users
                out["latest_reply"] = replies[-1].ts if replies else message.ts
                out["subscribed"] = False
        if message.reactions:
            out["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)} for name, users in message.reactions.items()
            ]
        return out

    def render_file(self, record: FileRecord) -> dict[str, Any]:
        filetype = record.name.rsplit(".", 1)[-1].lower() if "." in record.name else "binary"
        url = f"{self._base_url()[: -len('api/')]}files-pri/{self.team_id}-{record.id}/{record.name}"
        return {
            "id": record.id,
            "created": record.created,
            "timestamp": record.created,
            "name": record.name,
            "title": record.title,
            "mimetype": record.mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": record.user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(record.content) if record.content is not None else record.length,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": url,
            "url_private_download": url + "?download=1",
            "permalink": f"https://{self.team_domain}.slack.com/files/{record.user}/{record.id}/{record.name}",
            "channels": list(record.channels),
            "groups": [],
            "ims": [],
            "comments_count": 0,
            "alt_txt": record.alt_txt or "",
        }

    def render_user(self, record: UserRecord, *, with_email: bool) -> dict[str, Any]:
        first, _, last = record.real_name.partition(" ")
        image = f"{self._base_url()[: -len('api/')]}static/avatar_{record.id}_{{}}.png"
        profile: dict[str, Any] = {
            "real_name": record.real_name,
            "real_name_normalized": record.real_name,
            "display_name": record.name,
            "display_name_normalized": record.name,
            "first_name": first,
            "last_name": last,
            "title": "",
            "phone": "",
            "status_text": "",
            "status_emoji": "",
            "avatar_hash": record.id.lower(),
            "team": self.team_id,
            **{f"image_{size}": image.format(size) for size in (24, 32, 48, 72, 192, 512)},
        }
        if record.bot_id:
            profile["bot_id"] = record.bot_id
            profile["api_app_id"] = self.app_id
        if with_email and record.email is not None:
            profile["email"] = record.email
        return {
            "id": record.id,
            "team_id": self.team_id,
            "name": record.name,
            "deleted": record.deleted,
            "real_name": record.real_name,
            "tz": record.tz,
            "tz_label": record.tz,
            "tz_offset": 0,
            "profile": profile,
            "is_admin": record.is_admin,
            "is_owner": record.is_admin,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": record.is_bot,
            "is_app_user": False,
            "updated": record.updated,
        }

    # ---------------------------------------------------------------- message helpers

    def _message(self, channel: str, ts: str) -> MessageRecord | None:
        for message in self.messages.get(channel, []):
            if message.ts == ts:
                return message
        return None

    def _replies(self, channel: str, parent_ts: str) -> list[MessageRecord]:
        return [m for m in self.messages.get(channel, []) if m.thread_ts == parent_ts and m.ts != parent_ts]

    def thread_root(self, channel: ChannelRecord, thread_ts: str | None) -> str | None:
        """The parent ``ts`` a reply goes under (a reply to a reply joins the parent's thread)."""
        if thread_ts is None:
            return None
        parent = self._message(channel.id, thread_ts)
        if parent is None:
            raise ApiError("thread_not_found")
        return parent.thread_ts or parent.ts

    def record_message(self, channel: ChannelRecord, message: MessageRecord) -> MessageRecord:
        parent_ts = message.thread_ts
        if parent_ts is not None:
            parent = self._message(channel.id, parent_ts)
            if parent is not None and parent.thread_ts is None:
                parent.thread_ts = parent.ts
        self.messages[channel.id].append(message)
        return message

    # ---------------------------------------------------------------- events

    @staticmethod
    def channel_type(channel: ChannelRecord) -> str:
        return "group" if channel.is_private else "channel"

    def event_message(self, message: MessageRecord) -> dict[str, Any]:
        """A message as events carry it: no repliers list, no app_id, files without their share lists."""
        rendered = self.render_message(message)
        for key in ("reply_users", "app_id", "reactions"):
            rendered.pop(key, None)
        for file in rendered.get("files", []):
            for key in ("channels", "groups", "ims"):
                file.pop(key, None)
        if message.subtype == "bot_message":
            # Customised bot posts arrive as bot_message events, without user or bot profile.
            for key in ("user", "team", "bot_profile", "metadata"):
                rendered.pop(key, None)
        return rendered

    def message_event(self, channel: ChannelRecord, message: MessageRecord) -> dict[str, Any]:
        event = self.event_message(message)
        for key in ("reply_count", "reply_users_count", "latest_reply", "subscribed"):
            event.pop(key, None)
        if message.files:
            event.pop("team", None)
        event.update({"channel": channel.id, "event_ts": message.ts, "channel_type": self.channel_type(channel)})
        return event

    def changed_event(self, channel: ChannelRecord, previous: dict[str, Any], message: MessageRecord) -> dict[str, Any]:
        event_ts = message.edited["ts"] if message.edited else self.next_ts()
        return {
            "type": "message",
            "subtype": "message_changed",
            "channel": channel.id,
            "hidden": True,
            "message": self.event_message(message),
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": self.channel_type(channel),
        }

    def deleted_event(self, channel: ChannelRecord, previous: dict[str, Any], ts: str) -> dict[str, Any]:
        event_ts = self.next_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "channel": channel.id,
            "hidden": True,
            "deleted_ts": ts,
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": self.channel_type(channel),
        }

    def archive_event(self, channel: ChannelRecord, user_id: str, *, archived: bool) -> dict[str, Any]:
        prefix = "group" if channel.is_private else "channel"
        event: dict[str, Any] = {"type": f"{prefix}_{'archive' if archived else 'unarchive'}", "channel": channel.id}
        # group_unarchive names the actor actor_id; the others say user.
        event["actor_id" if channel.is_private and not archived else "user"] = user_id
        event["event_ts"] = self.next_ts()
        return event

    def author_name(self, identity: Identity) -> str:
        return self.users[identity.user_id].name

    # ---------------------------------------------------------------- auth

    def _m_auth_test(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        user = self.users[identity.user_id]
        out: dict[str, Any] = {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": user.name,
            "team_id": self.team_id,
            "user_id": user.id,
            "is_enterprise_install": False,
        }
        if identity.kind == "bot":
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
            out["app_name"] = self.bot_name
        return out

    # ---------------------------------------------------------------- conversations

    def _m_conversations_create(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        is_private = arg_bool(args, "is_private")
        self._check_scope(METHODS["conversations.create"], identity, "private" if is_private else "public")
        name = args.get("name")
        error = channel_name_error(name)
        if error is not None:
            raise ApiError(error)
        assert isinstance(name, str)
        # Names stay taken by archived channels too.
        if self.find_channel(name) is not None:
            raise ApiError("name_taken")
        channel_id = self.add_channel(name, is_private=is_private, members=[identity.user_id], creator=identity.user_id)
        return {"channel": self.render_channel(self.channels[channel_id], identity.user_id)}

    def _m_conversations_join(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.join"], identity, args)
        if channel.is_private:
            raise ApiError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise ApiError("is_archived")
        out: dict[str, Any] = {}
        if identity.user_id in channel.members:
            out = {"warning": "already_in_channel", "response_metadata": {"warnings": ["already_in_channel"]}}
        else:
            channel.members.append(identity.user_id)
        return {"channel": self.render_channel(channel, identity.user_id), **out}

    def _m_conversations_invite(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.invite"], identity, args)
        if channel.is_archived:
            raise ApiError("is_archived")
        if identity.user_id not in channel.members:
            raise ApiError("not_in_channel")
        users = arg_list(args, "users")
        if not users:
            raise ApiError("no_user")
        if identity.user_id in users:
            raise ApiError("cant_invite_self")
        for user_id in users:
            user = self.users.get(user_id)
            if user is None or user.deleted:
                raise ApiError("user_not_found")
        already = [user_id for user_id in users if user_id in channel.members]
        if already:
            raise ApiError(
                "already_in_channel",
                errors=[{"user": user_id, "ok": False, "error": "already_in_channel"} for user_id in already],
            )
        channel.members.extend(dict.fromkeys(users))
        return {"channel": self.render_channel(channel, identity.user_id)}

    def _m_conversations_kick(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.kick"], identity, args)
        user_id = arg_str(args, "user")
        if not user_id or user_id not in self.users:
            raise ApiError("user_not_found")
        if user_id == identity.user_id:
            raise ApiError("cant_kick_self")
        if channel.is_general:
            raise ApiError("cant_kick_from_general")
        if identity.user_id not in channel.members or user_id not in channel.members:
            raise ApiError("not_in_channel")
        channel.members.remove(user_id)
        return {}

    def _m_conversations_archive(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.archive"], identity, args)
        if channel.is_archived:
            raise ApiError("already_archived")
        if channel.is_general:
            raise ApiError("cant_archive_general")
        if identity.user_id not in channel.members:
            raise ApiError("not_in_channel")
        channel.is_archived = True
        channel.updated = self.now() * 1000
        self.emitted.append(self.archive_event(channel, identity.user_id, archived=True))
        return {}

    def _m_conversations_unarchive(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.unarchive"], identity, args)
        if identity.kind == "bot":
            # Bot tokens cannot unarchive (only a user token can). Of the errors Slack documents for this
            # method, method_not_supported_for_channel_type is the one a bot token gets.
            raise ApiError("method_not_supported_for_channel_type")
        if not channel.is_archived:
            raise ApiError("not_archived")
        channel.is_archived = False
        channel.updated = self.now() * 1000
        self.emitted.append(self.archive_event(channel, identity.user_id, archived=False))
        return {}

    def _m_conversations_rename(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.rename"], identity, args)
        if channel.is_archived:
            raise ApiError("is_archived")
        if identity.user_id not in channel.members:
            raise ApiError("not_in_channel")
        name = args.get("name")
        error = channel_name_error(name)
        if error is not None:
            raise ApiError(error)
        assert isinstance(name, str)
        if name != channel.name:
            if self.find_channel(name) is not None:
                raise ApiError("name_taken")
            channel.previous_names.insert(0, channel.name)
            channel.name = name
            channel.updated = self.now() * 1000
        return {"channel": self.render_channel(channel, identity.user_id)}

    def _set_text_field(self, method: str, field: str, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS[method], identity, args)
        if channel.is_archived:
            raise ApiError("is_archived")
        if identity.user_id not in channel.members:
            raise ApiError("not_in_channel")
        value = arg_str(args, field) or ""
        if len(value) > MAX_TOPIC:
            raise ApiError("too_long")
        target = channel.topic if field == "topic" else channel.purpose
        target.update({"value": value, "creator": identity.user_id, "last_set": self.now()})
        return {"channel": self.render_channel(channel, identity.user_id)}

    def _m_conversations_setTopic(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        return self._set_text_field("conversations.setTopic", "topic", identity, args)

    def _m_conversations_setPurpose(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        return self._set_text_field("conversations.setPurpose", "purpose", identity, args)

    def _m_conversations_info(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.info"], identity, args)
        rendered = self.render_channel(channel, identity.user_id)
        if arg_bool(args, "include_num_members"):
            rendered["num_members"] = len(channel.members)
        return {"channel": rendered}

    @staticmethod
    def _page(items: list[Any], args: Mapping[str, Any], default: int, maximum: int) -> tuple[list[Any], str]:
        limit = arg_int(args, "limit", default)
        if limit <= 0:
            limit = default
        limit = min(limit, maximum)
        cursor = arg_str(args, "cursor") or ""
        start = 0
        if cursor:
            try:
                start = int(base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii").removeprefix("o:"))
            except ValueError:
                raise ApiError("invalid_cursor") from None
            if start < 0 or start > len(items):
                raise ApiError("invalid_cursor")
        end = start + limit
        next_cursor = base64.urlsafe_b64encode(f"o:{end}".encode("ascii")).decode() if end < len(items) else ""
        return items[start:end], next_cursor

    def _m_conversations_list(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        wanted = [t.strip() for t in (arg_str(args, "types") or "public_channel").split(",") if t.strip()]
        if not wanted or any(t not in ("public_channel", "private_channel", "mpim", "im") for t in wanted):
            raise ApiError("invalid_types")
        spec = METHODS["conversations.list"]
        for kind in wanted:
            if kind in ("public_channel", "private_channel"):
                self._check_scope(spec, identity, "private" if kind == "private_channel" else "public")
        exclude_archived = arg_bool(args, "exclude_archived")
        # Private channels are listed only to their members, as in Slack.
        visible = [
            record
            for record in self.channels.values()
            if (("private_channel" in wanted) if record.is_private else ("public_channel" in wanted))
            and (not record.is_private or identity.user_id in record.members)
            and not (exclude_archived and record.is_archived)
        ]
        page, next_cursor = self._page(visible, args, 100, 1000)
        return {
            "channels": [self.render_channel(r, identity.user_id) for r in page],
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_conversations_members(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["conversations.members"], identity, args)
        page, next_cursor = self._page(list(channel.members), args, 100, 1000)
        return {"members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _readable(self, spec: MethodSpec, identity: Identity, args: Mapping[str, Any]) -> ChannelRecord:
        channel = self._channel(spec, identity, args)
        # A bot reads only where it is a member; a user may read any public channel.
        if identity.user_id not in channel.members and (identity.kind == "bot" or channel.is_private):
            raise ApiError("not_in_channel")
        return channel

    def _m_conversations_history(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._readable(METHODS["conversations.history"], identity, args)
        oldest = self._ts_arg(args, "oldest", "invalid_ts_oldest")
        latest = self._ts_arg(args, "latest", "invalid_ts_latest")
        inclusive = arg_bool(args, "inclusive")
        with_metadata = arg_bool(args, "include_all_metadata")

        def in_range(ts: float) -> bool:
            above = oldest is None or (ts >= oldest if inclusive else ts > oldest)
            below = latest is None or (ts <= latest if inclusive else ts < latest)
            return above and below

        # History lists top-level messages (and replies broadcast to the channel), newest first.
        visible = [
            m
            for m in reversed(self.messages[channel.id])
            if (m.thread_ts is None or m.thread_ts == m.ts or m.reply_broadcast) and in_range(float(m.ts))
        ]
        page, next_cursor = self._page(visible, args, 100, 999)
        return {
            "messages": [self.render_message(m, metadata=with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _m_conversations_replies(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._readable(METHODS["conversations.replies"], identity, args)
        ts = arg_str(args, "ts") or ""
        parent = self._message(channel.id, ts)
        if parent is None:
            raise ApiError("thread_not_found")
        root = parent.thread_ts or parent.ts
        root_message = self._message(channel.id, root)
        thread = ([root_message] if root_message else []) + self._replies(channel.id, root)
        with_metadata = arg_bool(args, "include_all_metadata")
        page, next_cursor = self._page(thread, args, 1000, 1000)
        return {
            "messages": [self.render_message(m, metadata=with_metadata) for m in page],
            "has_more": bool(next_cursor),
            "response_metadata": {"next_cursor": next_cursor},
        }

    @staticmethod
    def _ts_arg(args: Mapping[str, Any], name: str, code: str) -> float | None:
        value = arg_str(args, name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except ValueError:
            raise ApiError(code) from None

    # ---------------------------------------------------------------- chat

    def _content(self, args: Mapping[str, Any], *, require: bool) -> tuple[str, list[dict[str, Any]] | None, Any]:
        text = arg_str(args, "text") or ""
        blocks = parse_blocks(args.get("blocks"))
        attachments = args.get("attachments")
        if isinstance(attachments, str) and attachments:
            try:
                attachments = json.loads(attachments)
            except ValueError:
                raise ApiError("invalid_attachments") from None
        if attachments is not None and not isinstance(attachments, list):
            raise ApiError("invalid_attachments")
        if require and not text.strip() and not blocks and not attachments:
            raise ApiError("no_text")
        if len(text) > MAX_TEXT:
            raise ApiError("msg_too_long")
        return text, blocks, attachments or None

    def _can_post(self, identity: Identity, channel: ChannelRecord) -> None:
        if channel.is_archived:
            raise ApiError("is_archived")
        public_ok = identity.kind == "bot" and not channel.is_private and "chat:write.public" in identity.scopes
        if identity.user_id not in channel.members and not public_ok:
            raise ApiError("not_in_channel")

    def _m_chat_postMessage(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["chat.postMessage"], identity, args, by_name=True)
        self._can_post(identity, channel)
        text, blocks, attachments = self._content(args, require=True)
        metadata = parse_metadata(args.get("metadata"))
        thread_ts = self.thread_root(channel, arg_str(args, "thread_ts") or None)
        username: str | None = None
        icons: dict[str, str] | None = None
        author = self.author_name(identity)
        # Without chat:write.customize Slack silently ignores the display overrides.
        if identity.kind == "bot" and "chat:write.customize" in identity.scopes:
            username = arg_str(args, "username") or None
            icon_url = arg_str(args, "icon_url")
            icon_emoji = arg_str(args, "icon_emoji")
            if icon_emoji:
                icons = {"emoji": icon_emoji}
            elif icon_url:
                icons = {"image_64": icon_url}
            if username:
                author = username
        bot = identity.kind == "bot"
        message = MessageRecord(
            ts=self.next_ts(channel),
            channel=channel.id,
            user=identity.user_id,
            text=text,
            bot_id=self.bot_id if bot else None,
            app_id=self.app_id if bot else None,
            subtype="bot_message" if bot and (username or icons) else None,
            username=username,
            icons=icons,
            blocks=blocks,
            attachments=attachments,
            metadata=metadata,
            thread_ts=thread_ts,
            reply_broadcast=thread_ts is not None and arg_bool(args, "reply_broadcast"),
            author=author,
        )
        self.record_message(channel, message)
        self.emitted.append(self.message_event(channel, message))
        return {"channel": channel.id, "ts": message.ts, "message": self.render_message(message)}

    def _own_message(self, identity: Identity, channel: ChannelRecord, ts: str, code: str) -> MessageRecord:
        message = self._message(channel.id, ts)
        if message is None:
            raise ApiError("message_not_found")
        own = message.bot_id == self.bot_id if identity.kind == "bot" else message.user == identity.user_id
        if not own or (identity.kind == "user" and message.bot_id is not None):
            raise ApiError(code)
        return message

    def _m_chat_update(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["chat.update"], identity, args)
        message = self._own_message(identity, channel, arg_str(args, "ts") or "", "cant_update_message")
        text, blocks, attachments = self._content(args, require=False)
        if not text and blocks is None and attachments is None and not message.files:
            raise ApiError("no_text")
        metadata = parse_metadata(args.get("metadata"))
        previous = self.event_message(message)
        message.text = text
        if blocks is not None or "blocks" in args:
            message.blocks = blocks
        if attachments is not None:
            message.attachments = attachments
        if metadata is not None:
            message.metadata = metadata
        message.edited = {"user": identity.user_id, "ts": self.next_ts()}
        self.emitted.append(self.changed_event(channel, previous, message))
        rendered = self.render_message(message)
        rendered.pop("ts")  # chat.update's message carries no ts of its own (the top-level ts is it)
        return {"channel": channel.id, "ts": message.ts, "text": message.text, "message": rendered}

    def _m_chat_delete(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["chat.delete"], identity, args)
        message = self._own_message(identity, channel, arg_str(args, "ts") or "", "cant_delete_message")
        previous = self.event_message(message)
        self.messages[channel.id].remove(message)
        self.emitted.append(self.deleted_event(channel, previous, message.ts))
        return {"channel": channel.id, "ts": message.ts}

    def _m_chat_postEphemeral(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["chat.postEphemeral"], identity, args)
        self._can_post(identity, channel)
        user_id = arg_str(args, "user") or ""
        if user_id not in channel.members:
            raise ApiError("user_not_in_channel")
        text, blocks, _ = self._content(args, require=True)
        ts = self.next_ts()
        self.ephemerals.append({"channel": channel.id, "user": user_id, "text": text, "blocks": blocks, "ts": ts})
        return {"message_ts": ts}

    def _m_reactions_add(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        channel = self._channel(METHODS["reactions.add"], identity, args)
        if channel.is_archived:
            raise ApiError("is_archived")
        message = self._message(channel.id, arg_str(args, "timestamp") or "")
        if message is None:
            raise ApiError("message_not_found")
        name = (arg_str(args, "name") or "").strip(":")
        if not name or " " in name:
            raise ApiError("invalid_name")
        users = message.reactions.setdefault(name, [])
        if identity.user_id in users:
            raise ApiError("already_reacted")
        users.append(identity.user_id)
        return {}

    # ---------------------------------------------------------------- users

    def _m_users_info(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        user = self.users.get(arg_str(args, "user") or "")
        if user is None:
            raise ApiError("user_not_found")
        return {"user": self.render_user(user, with_email="users:read.email" in identity.scopes)}

    def _m_users_lookupByEmail(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        email = (arg_str(args, "email") or "").strip().lower()
        for user in self.users.values():
            if user.email is not None and user.email.lower() == email and not user.deleted:
                return {"user": self.render_user(user, with_email=True)}
        raise ApiError("users_not_found")

    def _m_users_getPresence(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        user = self.users.get(arg_str(args, "user") or identity.user_id)
        if user is None:
            raise ApiError("user_not_found")
        out: dict[str, Any] = {"presence": user.presence}
        if user.id == identity.user_id:
            active = user.presence == "active"
            out.update({"online": active, "auto_away": False, "manual_away": not active, "connection_count": 1})
        return out

    # ---------------------------------------------------------------- files

    def _m_files_getUploadURLExternal(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        filename = arg_str(args, "filename") or ""
        length = arg_int(args, "length", 0)
        if length <= 0:
            raise ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] length must be > 0"]})
        alt_txt = arg_str(args, "alt_txt")
        if alt_txt is not None and len(alt_txt) > 1000:
            raise ApiError("alt_txt_too_large")
        key = self.random_hex(32)
        record = FileRecord(
            id=self._new_id("F"),
            name=filename,
            title=filename,
            user=identity.user_id,
            created=self.now(),
            length=length,
            upload_key=key,
            alt_txt=alt_txt,
            mimetype=mimetypes.guess_type(filename)[0] or "application/octet-stream",
        )
        self.files[record.id] = record
        self.uploads[key] = record.id
        upload_url = f"{self._base_url()[: -len('api/')]}upload/v1/{key}"
        return {"upload_url": upload_url, "file_id": record.id}

    def _m_files_completeUploadExternal(self, identity: Identity, args: Mapping[str, Any]) -> dict[str, Any]:
        raw = args.get("files")
        try:
            entries = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise ApiError("invalid_arguments") from None
        if not isinstance(entries, list) or not entries:
            raise ApiError("invalid_arguments")
        records: list[FileRecord] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise ApiError("invalid_arguments")
            record = self.files.get(entry["id"])
            # Only the uploader may complete, and only once the bytes have arrived.
            if record is None or record.user != identity.user_id or record.content is None or record.completed:
                raise ApiError("file_not_found")
            title = entry.get("title")
            if isinstance(title, str) and title:
                record.title = title
            records.append(record)
        channel_ids = arg_list(args, "channels")
        single = arg_str(args, "channel_id")
        if single:
            channel_ids = [single, *channel_ids]
        channels: list[ChannelRecord] = []
        for channel_id in dict.fromkeys(channel_ids):
            channel = self._channel(METHODS["files.completeUploadExternal"], identity, {"channel": channel_id})
            self._can_post(identity, channel)
            channels.append(channel)
        thread = arg_str(args, "thread_ts") or None
        if thread is not None and len(channels) != 1:
            raise ApiError("invalid_arguments")
        text = arg_str(args, "initial_comment") or ""
        blocks = parse_blocks(args.get("blocks"))
        for record in records:
            record.completed = True
        for channel in channels:
            bot = identity.kind == "bot"
            message = MessageRecord(
                ts=self.next_ts(channel),
                channel=channel.id,
                user=identity.user_id,
                text=text,
                bot_id=self.bot_id if bot else None,
                app_id=self.app_id if bot else None,
                subtype=None if bot else "file_share",
                blocks=blocks,
                files=[record.id for record in records],
                thread_ts=self.thread_root(channel, thread),
                author=self.author_name(identity),
            )
            for record in records:
                record.channels.append(channel.id)
            self.record_message(channel, message)
            self.emitted.append(self.message_event(channel, message))
        return {"files": [{"id": record.id, "title": record.title} for record in records]}
