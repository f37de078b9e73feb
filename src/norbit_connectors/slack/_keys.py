"""The store namespaces of the Slack connector."""

from __future__ import annotations

__all__ = ["CHANNELS", "CONVERSATIONS", "LINKS", "MESSAGES", "NOTICES", "SENDING", "TIMESTAMPS", "USERS"]

LINKS = "slack.link"  # link key ("user:<id>" / "conv:<id>") -> channel and card
CONVERSATIONS = "slack.conv"  # conversation id -> link key
CHANNELS = "slack.channel"  # channel id -> link key, latest conversation id
MESSAGES = "slack.msg"  # "<conversation>\x1f<message>" -> channel, ts
TIMESTAMPS = "slack.ts"  # "<channel>:<ts>" -> conversation id, message id
SENDING = "slack.sending"  # "<conversation>\x1f<message>" -> a post was under way (written by earlier versions)
USERS = "slack.user"  # Slack user id -> name, email (cache)
NOTICES = "slack.notice"  # "<channel>:<ts>" of a notice card -> link key, the conversation its Join button is for
