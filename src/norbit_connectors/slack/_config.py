"""SlackConfig: everything the Slack connector needs to know, checked at construction."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal

from attrs import field, frozen

from ..exceptions import ConfigurationError

__all__ = ["SlackConfig"]

_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_USER_FIELDS = frozenset({"id", "name", "email", "avatar_url"})


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@frozen(kw_only=True)
class SlackConfig:
    """Configuration of a :class:`SlackConnector`.

    - ``bot_token`` (``xoxb-``) and ``signing_secret``: from the Slack app's settings. The signing secret verifies
      requests to the Request URL (:meth:`SlackConnector.handle_http`); an app that takes its events over Socket
      Mode only may leave it out.
    - ``main_channel``: channel id where new-conversation notices go unless ``department_channels`` names one.
    - ``agent_links``: host agent id -> Slack user id. ``agent_linking=True`` invites only the relevant linked
      agents into each conversation channel (the assigned agent, else the department's, else all linked agents).
    - ``user_details``: the only user fields shown on the notice card: ``User`` attributes (``email``, ...) or
      keys of ``User.details``.
    - ``user_token`` (``xoxp-``, optional): the installing user's token; lets a reopened conversation unarchive
      its channel (bot tokens cannot) and adds that user to every channel.
    - ``channel_per``: one channel per customer (``"user"``, default) or per conversation.
    - ``private_channels``: create private channels (default) or public ones.
    """

    bot_token: str = field(repr=_secret_repr)
    main_channel: str
    signing_secret: str | None = field(default=None, repr=_secret_repr)
    department_channels: Mapping[str, str] = field(factory=dict, converter=_frozen_map)
    agent_links: Mapping[str, str] = field(factory=dict, converter=_frozen_map)
    agent_linking: bool = False
    user_details: tuple[str, ...] = field(default=(), converter=_names)
    user_token: str | None = field(default=None, repr=_secret_repr)
    base_url: str = "https://slack.com/api/"
    channel_per: Literal["user", "conversation"] = "user"
    private_channels: bool = True
    channel_prefix: str = ""
    bot_name: str = "Assistant"
    max_file_bytes: int = 20 * 1024 * 1024
    timeout: float = 30.0

    def __attrs_post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.bot_token, str) or not self.bot_token.startswith("xoxb-"):
            problems.append("bot_token must be a bot token starting with 'xoxb-' (OAuth & Permissions page)")
        if self.signing_secret is not None and (
            not isinstance(self.signing_secret, str) or len(self.signing_secret.strip()) < 8
        ):
            problems.append("signing_secret must be the app's Signing Secret (Basic Information page), or None")
        if self.user_token is not None and not self.user_token.startswith("xoxp-"):
            problems.append("user_token must be a user token starting with 'xoxp-', or None")
        if not _CHANNEL_ID.match(self.main_channel or ""):
            problems.append(f"main_channel must be a channel id like 'C0123ABCD', not {self.main_channel!r}")
        for department, channel in self.department_channels.items():
            if not _CHANNEL_ID.match(channel):
                problems.append(f"department_channels[{department!r}] must be a channel id, not {channel!r}")
        for agent, user in self.agent_links.items():
            if not _USER_ID.match(user):
                problems.append(f"agent_links[{agent!r}] must be a Slack user id like 'U0123ABCD', not {user!r}")
        if self.channel_per not in ("user", "conversation"):
            problems.append("channel_per must be 'user' or 'conversation'")
        if not self.base_url.startswith(("http://", "https://")) or not self.base_url.endswith("/"):
            problems.append("base_url must be an http(s) URL ending with '/', like 'https://slack.com/api/'")
        if self.max_file_bytes < 1:
            problems.append("max_file_bytes must be positive")
        if problems:
            raise ConfigurationError("SlackConfig: " + "; ".join(problems))

    def notice_channel(self, department_id: str | None) -> str:
        """Where the notice for a conversation of ``department_id`` goes."""
        if department_id is not None and department_id in self.department_channels:
            return self.department_channels[department_id]
        return self.main_channel

    @property
    def linked_users(self) -> Mapping[str, str]:
        """Slack user id -> host agent id."""
        return {user: agent for agent, user in self.agent_links.items()}
