"""Parsing inbound Slack HTTP bodies into typed values (pure).

One Request URL receives three kinds of body:

- Events API: ``application/json``, ``type`` ``url_verification`` or ``event_callback`` (others, such as
  ``app_rate_limited``, are well-formed but unhandled: :class:`UnknownPayload`, to be acked with 200);
- slash commands: ``application/x-www-form-urlencoded`` fields (``command``, ``text``, ...);
- interactivity: the same encoding with one field, ``payload``, holding JSON (``block_actions``, ...).

:func:`parse_request` raises :class:`~norbit_connectors.exceptions.InvalidRequest` (status 400) with a clear
message for anything malformed and never any other exception. Verify the signature before parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from attrs import field, frozen

from .._json import MAX_JSON_DEPTH, json_depth
from ..exceptions import InvalidRequest

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_VALUE_LENGTH",
    "Action",
    "BlockActions",
    "ChannelArchived",
    "ChannelUnarchived",
    "EventCallback",
    "FileRef",
    "Inbound",
    "MemberJoined",
    "MessageChanged",
    "MessageDeleted",
    "MessageEvent",
    "OtherEvent",
    "SlackEvent",
    "SlashCommand",
    "UnknownPayload",
    "UrlVerification",
    "is_human_message",
    "is_slack_id",
    "json_depth",
    "parse_event",
    "parse_request",
]

#: Message subtypes written by a person (a plain message has no subtype).
HUMAN_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

_EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})

#: Longest id Slack sends that we accept (event ids, channel / user / team ids, timestamps, trigger ids). Real
#: ones are far shorter; the bound keeps store keys small.
MAX_ID_LENGTH = 255
#: Longest button value we accept (Block Kit's own limit for a button's ``value``).
MAX_VALUE_LENGTH = 2000

# Slack's ids are printable ASCII without spaces: this rules out NUL, lone surrogates and anything a store
# cannot keep as a key.
_SLACK_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")


def is_slack_id(value: str) -> bool:
    """Whether ``value`` can be one of Slack's ids: 1 to :data:`MAX_ID_LENGTH` printable ASCII characters."""
    return _SLACK_ID.fullmatch(value) is not None


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else MappingProxyType(dict(value))


# ---------------------------------------------------------------------------------------------------- values


@frozen(kw_only=True)
class FileRef:
    """A file shared in a message; fetch ``url_private_download`` (or ``url_private``) with the bot token."""

    id: str
    name: str | None = None
    title: str | None = None
    mimetype: str | None = None
    filetype: str | None = None
    url_private: str | None = None
    url_private_download: str | None = None
    size: int | None = None


@frozen(kw_only=True)
class MessageEvent:
    """A ``message`` event (new message, thread reply, file share, bot post, join notice, ...)."""

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    thread_ts: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    team: str | None = None
    channel_type: str | None = None
    files: tuple[FileRef, ...] = ()
    metadata_event_type: str | None = None
    metadata_payload: Mapping[str, Any] | None = field(default=None, converter=_frozen_mapping)


@frozen(kw_only=True)
class MessageChanged:
    """``message_changed``: the message at ``ts`` in ``channel`` now reads ``text``."""

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    previous_text: str | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    metadata_event_type: str | None = None
    metadata_payload: Mapping[str, Any] | None = field(default=None, converter=_frozen_mapping)


@frozen(kw_only=True)
class MessageDeleted:
    """``message_deleted``: the message at ``deleted_ts`` in ``channel`` is gone."""

    channel: str
    deleted_ts: str
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None


@frozen(kw_only=True)
class ChannelArchived:
    """``channel_archive`` or ``group_archive`` (private channel)."""

    channel: str
    user: str | None = None


@frozen(kw_only=True)
class ChannelUnarchived:
    """``channel_unarchive`` or ``group_unarchive``."""

    channel: str
    user: str | None = None


@frozen(kw_only=True)
class MemberJoined:
    """``member_joined_channel``."""

    channel: str
    user: str
    inviter: str | None = None
    channel_type: str | None = None


@frozen(kw_only=True)
class OtherEvent:
    """Any other event type: acknowledged and ignored."""

    type: str
    subtype: str | None = None


SlackEvent: TypeAlias = (
    MessageEvent | MessageChanged | MessageDeleted | ChannelArchived | ChannelUnarchived | MemberJoined | OtherEvent
)


@frozen(kw_only=True)
class UrlVerification:
    """Slack checking the Request URL: answer with ``challenge``."""

    challenge: str


@frozen(kw_only=True)
class EventCallback:
    """An Events API delivery. Retries repeat ``event_id`` (their headers are not part of the body)."""

    event_id: str
    event_time: int | None
    team_id: str | None
    api_app_id: str | None
    event: SlackEvent
    enterprise_id: str | None = None
    #: The ``event`` object as received, kept so that it can be stored without parsing the body again.
    raw_event: Mapping[str, Any] = field(factory=dict, eq=False, repr=False)


@frozen(kw_only=True)
class SlashCommand:
    """A slash command (``/archive``). Answer within 3 s, or later through ``response_url``."""

    command: str
    text: str
    user_id: str
    user_name: str | None
    channel_id: str
    channel_name: str | None
    team_id: str | None
    response_url: str | None
    trigger_id: str | None
    enterprise_id: str | None = None
    api_app_id: str | None = None


@frozen(kw_only=True)
class Action:
    """One element of a block_actions payload (a button click)."""

    action_id: str
    block_id: str | None
    value: str | None
    type: str
    url: str | None = None
    action_ts: str | None = None


@frozen(kw_only=True)
class BlockActions:
    """A ``block_actions`` interactivity payload: a click on ``actions`` in the message at ``message_ts``."""

    user_id: str
    user_name: str | None
    team_id: str | None
    channel_id: str | None
    message_ts: str | None
    thread_ts: str | None
    container_type: str | None
    actions: tuple[Action, ...]
    response_url: str | None
    trigger_id: str | None
    enterprise_id: str | None = None
    api_app_id: str | None = None


@frozen(kw_only=True)
class UnknownPayload:
    """A well-formed body of a type this library does not handle: acknowledge it with 200."""

    type: str


Inbound: TypeAlias = UrlVerification | EventCallback | SlashCommand | BlockActions | UnknownPayload


# ---------------------------------------------------------------------------------------------- field access


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(message, status=400)


def _req_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise _bad(f"{where}: field {key!r} must be a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string field that may be absent; null and the empty string count as absent."""
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}: field {key!r} must be a string")
    return value


def _req_id(data: Mapping[str, Any], key: str, where: str) -> str:
    value = _req_str(data, key, where)
    if not is_slack_id(value):
        raise _bad(f"{where}: field {key!r} is not a Slack id (1 to {MAX_ID_LENGTH} printable ASCII characters)")
    return value


def _opt_id(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = _opt_str(data, key, where)
    if value is not None and not is_slack_id(value):
        raise _bad(f"{where}: field {key!r} is not a Slack id (1 to {MAX_ID_LENGTH} printable ASCII characters)")
    return value


def _opt_value(data: Mapping[str, Any], key: str, where: str) -> str | None:
    """A button value: printable text (no NUL, no lone surrogates) of at most :data:`MAX_VALUE_LENGTH`."""
    value = _opt_str(data, key, where)
    if value is not None and (len(value) > MAX_VALUE_LENGTH or not value.isprintable()):
        raise _bad(f"{where}: field {key!r} must be printable text of at most {MAX_VALUE_LENGTH} characters")
    return value


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where}: field {key!r} must be a string")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{where}: field {key!r} must be an integer")
    return value


def _opt_obj(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return _EMPTY_MAPPING
    if not isinstance(value, dict):
        raise _bad(f"{where}: field {key!r} must be an object")
    return value


def _req_obj(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _bad(f"{where}: field {key!r} must be an object")
    return value


def _opt_list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(f"{where}: field {key!r} must be a list")
    return value


# ---------------------------------------------------------------------------------------------------- events


def _metadata(event: Mapping[str, Any], where: str) -> tuple[str | None, Mapping[str, Any] | None]:
    metadata = _opt_obj(event, "metadata", where)
    if not metadata:
        return None, None
    event_type = _opt_str(metadata, "event_type", f"{where}.metadata")
    payload = metadata.get("event_payload")
    if payload is not None and not isinstance(payload, dict):
        raise _bad(f"{where}.metadata: field 'event_payload' must be an object")
    return event_type, payload


def _file(data: Any, where: str) -> FileRef:
    if not isinstance(data, dict):
        raise _bad(f"{where}: each file must be an object")
    return FileRef(
        id=_req_id(data, "id", where),
        name=_opt_str(data, "name", where),
        title=_opt_str(data, "title", where),
        mimetype=_opt_str(data, "mimetype", where),
        filetype=_opt_str(data, "filetype", where),
        url_private=_opt_str(data, "url_private", where),
        url_private_download=_opt_str(data, "url_private_download", where),
        size=_opt_int(data, "size", where),
    )


def _message_event(event: Mapping[str, Any], subtype: str | None) -> SlackEvent:
    where = "message event"
    channel = _req_id(event, "channel", where)
    if subtype == "message_changed":
        message = _req_obj(event, "message", where)
        previous = _opt_obj(event, "previous_message", where)
        inner = "message_changed.message"
        event_type, payload = _metadata(message, inner)
        return MessageChanged(
            channel=channel,
            ts=_req_id(message, "ts", inner),
            text=_text(message, "text", inner),
            user=_opt_id(message, "user", inner),
            previous_text=_opt_str(previous, "text", "message_changed.previous_message"),
            thread_ts=_opt_id(message, "thread_ts", inner),
            bot_id=_opt_id(message, "bot_id", inner),
            metadata_event_type=event_type,
            metadata_payload=payload,
        )
    if subtype == "message_deleted":
        previous = _opt_obj(event, "previous_message", where)
        return MessageDeleted(
            channel=channel,
            deleted_ts=_req_id(event, "deleted_ts", where),
            user=_opt_id(previous, "user", "message_deleted.previous_message"),
            bot_id=_opt_id(previous, "bot_id", "message_deleted.previous_message"),
            thread_ts=_opt_id(previous, "thread_ts", "message_deleted.previous_message"),
        )
    event_type, payload = _metadata(event, where)
    files = tuple(_file(item, f"{where}.files") for item in _opt_list(event, "files", where))
    return MessageEvent(
        channel=channel,
        ts=_req_id(event, "ts", where),
        text=_text(event, "text", where),
        user=_opt_id(event, "user", where),
        thread_ts=_opt_id(event, "thread_ts", where),
        subtype=subtype,
        bot_id=_opt_id(event, "bot_id", where),
        team=_opt_id(event, "team", where),
        channel_type=_opt_str(event, "channel_type", where),
        files=files,
        metadata_event_type=event_type,
        metadata_payload=payload,
    )


def parse_event(event: Mapping[str, Any]) -> SlackEvent:
    """The ``event`` object of an ``event_callback`` as a typed value."""
    event_type = _req_str(event, "type", "event")
    subtype = _opt_str(event, "subtype", "event")
    where = f"{event_type} event"
    if event_type == "message":
        return _message_event(event, subtype)
    if event_type in ("channel_archive", "group_archive"):
        return ChannelArchived(channel=_req_id(event, "channel", where), user=_opt_id(event, "user", where))
    if event_type in ("channel_unarchive", "group_unarchive"):
        user = _opt_id(event, "user", where) or _opt_id(event, "actor_id", where)
        return ChannelUnarchived(channel=_req_id(event, "channel", where), user=user)
    if event_type == "member_joined_channel":
        return MemberJoined(
            channel=_req_id(event, "channel", where),
            user=_req_id(event, "user", where),
            inviter=_opt_id(event, "inviter", where),
            channel_type=_opt_str(event, "channel_type", where),
        )
    return OtherEvent(type=event_type, subtype=subtype)


def is_human_message(event: SlackEvent, *, bot_user_id: str | None) -> bool:
    """Whether ``event`` is a person's message: no bot_id, not our bot user, a plain message, a file share
    or a thread reply also sent to the channel (thread replies count)."""
    return (
        isinstance(event, MessageEvent)
        and event.bot_id is None
        and event.user is not None
        and event.user != bot_user_id
        and (event.subtype is None or event.subtype in HUMAN_SUBTYPES)
    )


# --------------------------------------------------------------------------------------------------- bodies


def _load_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"{where} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise _bad(f"{where} must be a JSON object")
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _bad(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def _event_body(data: Mapping[str, Any]) -> Inbound:
    body_type = data.get("type")
    if not isinstance(body_type, str):
        raise _bad("JSON body: field 'type' must be a string")
    if body_type == "url_verification":
        return UrlVerification(challenge=_req_str(data, "challenge", "url_verification"))
    if body_type != "event_callback":
        return UnknownPayload(type=body_type)
    where = "event_callback"
    raw_event = _req_obj(data, "event", where)
    return EventCallback(
        event_id=_req_id(data, "event_id", where),
        event_time=_opt_int(data, "event_time", where),
        team_id=_opt_id(data, "team_id", where),
        enterprise_id=_opt_id(data, "enterprise_id", where),
        api_app_id=_opt_id(data, "api_app_id", where),
        event=parse_event(raw_event),
        raw_event=raw_event,
    )


def _action(data: Any) -> Action:
    where = "block_actions.actions"
    if not isinstance(data, dict):
        raise _bad(f"{where}: each action must be an object")
    return Action(
        action_id=_req_str(data, "action_id", where),
        block_id=_opt_str(data, "block_id", where),
        value=_opt_value(data, "value", where),
        type=_req_str(data, "type", where),
        url=_opt_str(data, "url", where),
        action_ts=_opt_id(data, "action_ts", where),
    )


def _block_actions(data: Mapping[str, Any]) -> BlockActions:
    where = "block_actions"
    user = _req_obj(data, "user", where)
    team = _opt_obj(data, "team", where)
    enterprise = _opt_obj(data, "enterprise", where)
    channel = _opt_obj(data, "channel", where)
    container = _opt_obj(data, "container", where)
    message = _opt_obj(data, "message", where)
    actions = data.get("actions")
    if not isinstance(actions, list):
        raise _bad(f"{where}: field 'actions' must be a list")
    return BlockActions(
        user_id=_req_id(user, "id", f"{where}.user"),
        user_name=_opt_str(user, "username", f"{where}.user") or _opt_str(user, "name", f"{where}.user"),
        team_id=_opt_id(team, "id", f"{where}.team") or _opt_id(user, "team_id", f"{where}.user"),
        enterprise_id=_opt_id(enterprise, "id", f"{where}.enterprise")
        or _opt_id(team, "enterprise_id", f"{where}.team"),
        api_app_id=_opt_id(data, "api_app_id", where),
        channel_id=_opt_id(channel, "id", f"{where}.channel") or _opt_id(container, "channel_id", f"{where}.container"),
        message_ts=_opt_id(container, "message_ts", f"{where}.container") or _opt_id(message, "ts", f"{where}.message"),
        thread_ts=_opt_id(container, "thread_ts", f"{where}.container")
        or _opt_id(message, "thread_ts", f"{where}.message"),
        container_type=_opt_str(container, "type", f"{where}.container"),
        actions=tuple(_action(item) for item in actions),
        response_url=_opt_str(data, "response_url", where),
        trigger_id=_opt_id(data, "trigger_id", where),
    )


def _form_body(text: str) -> Inbound:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=1000)
    except ValueError as exc:
        raise _bad("form body is not valid application/x-www-form-urlencoded UTF-8") from exc
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    if "payload" in fields:
        payload = _load_json(fields["payload"], "interactivity payload")
        payload_type = payload.get("type")
        if not isinstance(payload_type, str):
            raise _bad("interactivity payload: field 'type' must be a string")
        if payload_type == "block_actions":
            return _block_actions(payload)
        return UnknownPayload(type=payload_type)
    if "ssl_check" in fields:
        # Slack's periodic certificate check on slash command URLs: it only wants a 200.
        return UnknownPayload(type="ssl_check")
    if "command" in fields:
        where = "slash command"
        return SlashCommand(
            command=_req_str(fields, "command", where),
            text=_text(fields, "text", where),
            user_id=_req_id(fields, "user_id", where),
            user_name=_opt_str(fields, "user_name", where),
            channel_id=_req_id(fields, "channel_id", where),
            channel_name=_opt_str(fields, "channel_name", where),
            team_id=_opt_id(fields, "team_id", where),
            enterprise_id=_opt_id(fields, "enterprise_id", where),
            api_app_id=_opt_id(fields, "api_app_id", where),
            response_url=_opt_str(fields, "response_url", where),
            trigger_id=_opt_id(fields, "trigger_id", where),
        )
    raise _bad("form body is neither a slash command nor an interactivity payload")


def _media_type(content_type: str | None, body: bytes) -> str:
    if content_type is not None:
        return content_type.split(";", 1)[0].strip().lower()
    # No header at all: tell JSON from a form by its first character.
    return "application/json" if body.lstrip()[:1] == b"{" else "application/x-www-form-urlencoded"


def parse_request(content_type: str | None, body: bytes) -> Inbound:
    """The inbound Slack request ``body`` (sent with ``content_type``) as a typed value.

    Raises :class:`InvalidRequest` (status 400) for anything malformed.
    """
    media_type = _media_type(content_type, body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad("request body is not UTF-8") from exc
    if media_type == "application/json":
        return _event_body(_load_json(text, "JSON body"))
    if media_type == "application/x-www-form-urlencoded":
        return _form_body(text)
    raise _bad(f"unsupported Content-Type {media_type!r}: expected JSON or a urlencoded form")
