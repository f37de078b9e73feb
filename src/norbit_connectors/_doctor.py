"""``norbit-connectors doctor``: check a Slack installation against what the connector needs.

Each check says what it found and, when something is wrong, what to change. The scopes come from the tables in
:mod:`._manifest`, the same ones ``norbit-connectors manifest`` writes into the app's manifest.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import anyio.to_thread
from attrs import field, frozen
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from ._manifest import BOT_SCOPES, METHOD_SCOPES, USER_METHOD_SCOPES, USER_SCOPES, MethodScopes
from .exceptions import ConfigurationError
from .slack._signature import sign_headers

__all__ = [
    "Check",
    "DoctorReport",
    "DoctorSettings",
    "parse_department_channels",
    "run_doctor",
]

DEFAULT_BASE_URL = "https://slack.com/api/"
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_SIGNING_SECRET = re.compile(r"^[0-9a-f]{32}$")
_DEPARTMENT = re.compile(r"^[^=,\s][^=,]*$")

# Calls that cannot change anything (required arguments left out) but that Slack answers with missing_scope
# when the scope is absent: used only when Slack does not list the granted scopes in x-oauth-scopes.
_BOT_PROBES = (
    "chat.postMessage",
    "conversations.create",
    "conversations.join",
    "conversations.history",
    "conversations.info",
    "users.info",
    "files.getUploadURLExternal",
)
_USER_PROBES = ("conversations.unarchive",)


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def parse_department_channels(text: str) -> dict[str, str]:
    """``"sales=C1,billing=C2"`` -> ``{"sales": "C1", "billing": "C2"}``; raise ConfigurationError if malformed."""
    result: dict[str, str] = {}
    if not isinstance(text, str):
        raise ConfigurationError("department channels must be text like 'sales=C0123,billing=C0456'")
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        department, sep, channel = item.partition("=")
        department, channel = department.strip(), channel.strip()
        if not sep or not department or not _DEPARTMENT.match(department) or not _CHANNEL_ID.match(channel):
            raise ConfigurationError(
                f"department channel {item!r} is not 'department=CHANNELID' (like 'sales=C0123ABCD')"
            )
        if department in result:
            raise ConfigurationError(f"department {department!r} is listed twice")
        result[department] = channel
    return result


@frozen(kw_only=True)
class DoctorSettings:
    """What doctor checks. Build it from the environment (:meth:`from_env`) or a SlackConfig (:meth:`from_config`)."""

    bot_token: str | None = field(default=None, repr=_secret_repr)
    signing_secret: str | None = field(default=None, repr=_secret_repr)
    main_channel: str | None = None
    department_channels: Mapping[str, str] = field(factory=dict, converter=_frozen_map)
    user_token: str | None = field(default=None, repr=_secret_repr)
    base_url: str = DEFAULT_BASE_URL
    request_url: str | None = None
    timeout: float = 10.0
    #: The app-level token (``xapp-``) of an app that takes its events over Socket Mode.
    app_token: str | None = field(default=None, repr=_secret_repr)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, request_url: str | None = None) -> DoctorSettings:
        """From SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_MAIN_CHANNEL, SLACK_USER_TOKEN,
        SLACK_DEPARTMENT_CHANNELS ("sales=C1,billing=C2"), SLACK_BASE_URL and SLACK_APP_TOKEN (Socket Mode).
        Raises ConfigurationError when SLACK_DEPARTMENT_CHANNELS is malformed."""

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        return cls(
            bot_token=get("SLACK_BOT_TOKEN"),
            signing_secret=get("SLACK_SIGNING_SECRET"),
            main_channel=get("SLACK_MAIN_CHANNEL"),
            department_channels=parse_department_channels(environ.get("SLACK_DEPARTMENT_CHANNELS", "")),
            user_token=get("SLACK_USER_TOKEN"),
            base_url=get("SLACK_BASE_URL") or DEFAULT_BASE_URL,
            request_url=request_url,
            app_token=get("SLACK_APP_TOKEN"),
        )

    @classmethod
    def from_config(cls, config: Any, *, request_url: str | None = None) -> DoctorSettings:
        """From a :class:`~norbit_connectors.slack.SlackConfig`."""
        return cls(
            bot_token=config.bot_token,
            signing_secret=config.signing_secret,
            main_channel=config.main_channel,
            department_channels=config.department_channels,
            user_token=config.user_token,
            base_url=config.base_url,
            request_url=request_url,
        )


@frozen(kw_only=True)
class Check:
    """One line of the checklist: ``ok``, what was found (``detail``) and, if not ok, what to do (``fix``)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


@frozen(kw_only=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def render(self) -> str:
        lines = []
        for check in self.checks:
            mark = "✓" if check.ok else "✗"
            lines.append(f"{mark} {check.name}: {check.detail}")
            if check.fix and not check.ok:
                lines.append(f"    fix: {check.fix}")
        problems = len(self.failed())
        lines.append("")
        lines.append("All checks passed." if problems == 0 else f"{problems} problem(s) found.")
        return "\n".join(lines) + "\n"


@frozen(kw_only=True)
class _Answer:
    data: Mapping[str, Any]
    headers: Mapping[str, str]
    error: str | None  # Slack's error code, "connection" when Slack could not be reached


class _Slack:
    def __init__(self, token: str, base_url: str, timeout: float) -> None:
        self._client = WebClient(token=token, base_url=base_url, timeout=int(max(1, timeout)), retry_handlers=[])

    async def call(self, method: str, **args: Any) -> _Answer:
        return await anyio.to_thread.run_sync(partial(self._call, method, args), abandon_on_cancel=True)

    def _call(self, method: str, args: dict[str, Any]) -> _Answer:
        try:
            response = self._client.api_call(method, data=args or None)
            data = response.data if isinstance(response.data, dict) else {}
            return _Answer(data=data, headers=_lower(response.headers), error=None)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = str(data.get("error") or f"http_{exc.response.status_code}")
            return _Answer(data=data, headers=_lower(exc.response.headers), error=code)
        except (SlackClientError, OSError, ValueError) as exc:
            return _Answer(data={}, headers={}, error=f"connection ({type(exc).__name__})")


def _lower(headers: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in dict(headers or {}).items():
        out[str(key).lower()] = ", ".join(value) if isinstance(value, list) else str(value)
    return out


def _scope_set(text: str) -> set[str]:
    return {part.strip() for part in text.split(",") if part.strip()}


_TOKEN_FIX = "copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN"
_REINSTALL = "add them under OAuth & Permissions > Scopes (or paste `norbit-connectors manifest`), then reinstall"


async def run_doctor(settings: DoctorSettings) -> DoctorReport:
    """Check ``settings`` against Slack; never raises for a problem it can describe."""
    checks: list[Check] = []
    checks.append(_check_signing_secret(settings.signing_secret, socket_mode=bool(settings.app_token)))
    if settings.app_token:
        checks.append(_check_app_token(settings.app_token))
    bot_user: str | None = None
    slack: _Slack | None = None
    if not settings.bot_token:
        checks.append(Check(name="Bot token", ok=False, detail="SLACK_BOT_TOKEN is not set", fix=_TOKEN_FIX))
    elif not settings.bot_token.startswith("xoxb-"):
        checks.append(
            Check(name="Bot token", ok=False, detail="the bot token does not start with 'xoxb-'", fix=_TOKEN_FIX)
        )
    else:
        slack = _Slack(settings.bot_token, settings.base_url, settings.timeout)
        who = await slack.call("auth.test")
        if who.error is not None:
            checks.append(_auth_failure("Bot token", who.error, settings.base_url, _TOKEN_FIX))
            slack = None
        else:
            bot_user = str(who.data.get("user_id") or "")
            checks.append(
                Check(
                    name="Bot token",
                    ok=True,
                    detail=f"valid: bot @{who.data.get('user', '?')} ({bot_user}) in {who.data.get('team', '?')}",
                )
            )
            checks.append(await _check_scopes(slack, who, "Bot scopes", BOT_SCOPES, _BOT_PROBES, METHOD_SCOPES))
    checks.extend(await _check_channels(settings, slack, bot_user))
    if settings.user_token is not None:
        checks.extend(await _check_user_token(settings))
    if settings.request_url:
        checks.append(await _check_request_url(settings))
    return DoctorReport(checks=tuple(checks))


def _check_signing_secret(secret: str | None, *, socket_mode: bool) -> Check:
    name = "Signing secret"
    where = "copy the Signing Secret from the app's Basic Information > App Credentials into SLACK_SIGNING_SECRET"
    if not secret and socket_mode:
        return Check(name=name, ok=True, detail="not set: events come over Socket Mode (a Request URL would need it)")
    if not secret:
        return Check(name=name, ok=False, detail="SLACK_SIGNING_SECRET is not set", fix=where)
    if not _SIGNING_SECRET.match(secret):
        return Check(
            name=name,
            ok=False,
            detail="does not look like a signing secret (32 lowercase hexadecimal characters)",
            fix=where + " (not the verification token, not a bot token)",
        )
    return Check(name=name, ok=True, detail="well-formed")


def _auth_failure(name: str, error: str, base_url: str, fix: str) -> Check:
    if error.startswith("connection"):
        return Check(
            name=name,
            ok=False,
            detail=f"Slack could not be reached at {base_url}: {error}",
            fix="check the network, a proxy, or SLACK_BASE_URL",
        )
    return Check(name=name, ok=False, detail=f"Slack rejected the token ({error})", fix=fix)


async def _check_scopes(
    slack: _Slack,
    who: _Answer,
    name: str,
    needed: Mapping[str, str],
    probes: tuple[str, ...],
    table: Mapping[str, MethodScopes],
) -> Check:
    header = who.headers.get("x-oauth-scopes")
    granted: set[str] | None = _scope_set(header) if header is not None else None
    unconfirmed: list[str] = []
    if granted is None:
        # Without the header, a missing_scope answer names the granted scopes ("provided") and the one needed.
        probe_missing: set[str] = set()
        for method in probes:
            answer = await slack.call(method)
            if answer.error == "missing_scope":
                provided = answer.data.get("provided")
                if isinstance(provided, str):
                    granted = _scope_set(provided)
                    break
                probe_missing |= _scope_set(str(answer.data.get("needed") or ""))
        if granted is None:
            probed = {s for m in probes for s in table[m].public + table[m].private}
            unconfirmed = sorted(set(needed) - probed - probe_missing)
            granted = set(needed) - probe_missing
    missing = [scope for scope in needed if scope not in granted]
    if missing:
        return Check(name=name, ok=False, detail="missing " + ", ".join(missing), fix=_REINSTALL)
    detail = f"all {len(needed)} needed scopes granted"
    if unconfirmed:
        detail += " (Slack did not list granted scopes; not confirmed: " + ", ".join(unconfirmed) + ")"
    return Check(name=name, ok=True, detail=detail)


async def _check_channels(settings: DoctorSettings, slack: _Slack | None, bot_user: str | None) -> list[Check]:
    wanted: list[tuple[str, str | None]] = [("Main channel", settings.main_channel)]
    wanted += [(f"Channel of department {dep!r}", channel) for dep, channel in settings.department_channels.items()]
    checks = []
    for name, channel in wanted:
        if not channel:
            checks.append(
                Check(
                    name=name,
                    ok=False,
                    detail="SLACK_MAIN_CHANNEL is not set",
                    fix="set SLACK_MAIN_CHANNEL to the id of the channel for new-conversation notices (C0123ABCD)",
                )
            )
        elif not _CHANNEL_ID.match(channel):
            checks.append(
                Check(
                    name=name,
                    ok=False,
                    detail=f"{channel!r} is not a channel id",
                    fix="use the channel's id (channel details, at the bottom: C0123ABCD), not its name",
                )
            )
        elif slack is not None and bot_user:
            checks.append(await _check_membership(slack, name, channel, bot_user))
    return checks


async def _check_membership(slack: _Slack, name: str, channel: str, bot_user: str) -> Check:
    invite = "type `/invite @<your app>` in that channel"
    info = await slack.call("conversations.info", channel=channel)
    if info.error == "channel_not_found":
        return Check(
            name=name,
            ok=False,
            detail=f"{channel} not found, or it is private and the bot is not in it",
            fix=f"check the id, or {invite}",
        )
    if info.error is not None:
        return Check(name=name, ok=False, detail=f"conversations.info failed: {info.error}", fix=_REINSTALL)
    record = info.data.get("channel") or {}
    label = f"#{record.get('name', channel)} ({channel})"
    if record.get("is_archived"):
        return Check(name=name, ok=False, detail=f"{label} is archived", fix="unarchive it or choose another channel")
    members: set[str] = set()
    cursor = ""
    for _ in range(100):
        page = await slack.call("conversations.members", channel=channel, limit=1000, cursor=cursor)
        if page.error is not None:
            return Check(name=name, ok=False, detail=f"conversations.members failed: {page.error}", fix=invite)
        members.update(str(m) for m in page.data.get("members") or [])
        cursor = str((page.data.get("response_metadata") or {}).get("next_cursor") or "")
        if not cursor or bot_user in members:
            break
    if bot_user not in members:
        return Check(name=name, ok=False, detail=f"the bot is not a member of {label}", fix=invite)
    return Check(name=name, ok=True, detail=f"{label}, the bot is a member")


async def _check_user_token(settings: DoctorSettings) -> list[Check]:
    token = settings.user_token or ""
    fix = "copy the User OAuth Token (xoxp-...) from OAuth & Permissions into SLACK_USER_TOKEN, or unset it"
    if not token.startswith("xoxp-"):
        return [Check(name="User token", ok=False, detail="the user token does not start with 'xoxp-'", fix=fix)]
    slack = _Slack(token, settings.base_url, settings.timeout)
    who = await slack.call("auth.test")
    if who.error is not None:
        return [_auth_failure("User token", who.error, settings.base_url, fix)]
    checks = [Check(name="User token", ok=True, detail=f"valid: @{who.data.get('user', '?')}")]
    checks.append(await _check_scopes(slack, who, "User scopes", USER_SCOPES, _USER_PROBES, USER_METHOD_SCOPES))
    return checks


def _check_app_token(token: str) -> Check:
    name = "App-level token"
    if not token.startswith("xapp-"):
        return Check(
            name=name,
            ok=False,
            detail="SLACK_APP_TOKEN does not start with 'xapp-'",
            fix="generate an app-level token with the connections:write scope under Basic Information > "
            "App-Level Tokens and put it in SLACK_APP_TOKEN",
        )
    return Check(name=name, ok=True, detail="well-formed (Socket Mode)")


async def _check_request_url(settings: DoctorSettings) -> Check:
    url = settings.request_url or ""
    name = "Request URL"
    if not url.startswith(("http://", "https://")):
        return Check(name=name, ok=False, detail=f"{url!r} is not an http(s) URL", fix="pass the full https:// URL")
    if not settings.signing_secret:
        return Check(name=name, ok=False, detail="cannot sign a test request without SLACK_SIGNING_SECRET")
    challenge = secrets.token_hex(16)
    body = json.dumps({"token": "doctor", "challenge": challenge, "type": "url_verification"}).encode()
    headers = {"Content-Type": "application/json", **sign_headers(settings.signing_secret, body)}
    timeout = settings.timeout

    def post() -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), response.read(65536)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(65536)

    try:
        status, answer = await anyio.to_thread.run_sync(post, abandon_on_cancel=True)
    except (OSError, ValueError) as exc:
        return Check(
            name=name,
            ok=False,
            detail=f"{url} could not be reached ({type(exc).__name__})",
            fix="start the app and make the URL reachable from the internet (a tunnel in development)",
        )
    if status == 401:
        return Check(
            name=name,
            ok=False,
            detail=f"{url} refused the signature (401)",
            fix="the app at that URL uses another signing secret than SLACK_SIGNING_SECRET",
        )
    if status != 200 or challenge.encode() not in answer:
        return Check(
            name=name,
            ok=False,
            detail=f"{url} answered HTTP {status} without the challenge",
            fix="route POST requests at that URL to SlackConnector.handle_http (or slack.asgi_app())",
        )
    return Check(name=name, ok=True, detail=f"{url} answered the url_verification challenge")
