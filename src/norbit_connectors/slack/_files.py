"""Which file URLs the connector fetches with the bot token (pure).

A ``file_share`` event names its files' ``url_private`` / ``url_private_download``, and fetching them needs the
bot token. The token goes only where Slack serves files: ``https://files.slack.com``, and the origin of the
configured ``base_url`` (Slack itself, or a local emulator in tests). Anything else (another host, another port,
``file:``, ``ftp:``, credentials in the URL, spaces or backslashes that parsers read differently) is refused
before any connection is made; redirects are not followed at all (see :meth:`SlackTransport.download`).

The URL checks are :mod:`norbit_connectors._urls`' (:func:`~norbit_connectors._urls.judge_url`), with Slack's
stricter rule on top: only those two origins, and only printable ASCII.
"""

from __future__ import annotations

from .._urls import judge_url, origin

__all__ = ["MAX_FILE_URL_LENGTH", "SLACK_FILES_ORIGIN", "file_note", "may_fetch"]

#: The origin Slack serves private files from.
SLACK_FILES_ORIGIN = "https://files.slack.com"
#: Longest file URL the connector fetches.
MAX_FILE_URL_LENGTH = 8192


def may_fetch(url: str, *, base_url: str) -> bool:
    """Whether ``url`` may be fetched with the bot token: it is on ``https://files.slack.com`` or on the
    origin of ``base_url``, and is printable ASCII without backslashes or credentials."""
    if not isinstance(url, str) or len(url) > MAX_FILE_URL_LENGTH:
        return False
    if any(not ("\x21" <= char <= "\x7e") for char in url):
        return False
    if origin(url) not in {SLACK_FILES_ORIGIN, origin(base_url)} - {None}:
        return False
    ours = (SLACK_FILES_ORIGIN, base_url)
    verdict = judge_url(url, trusted=ours, credentials_for=ours)
    return verdict.allowed and verdict.credentials


def file_note(name: str) -> str:
    """The line added to an agent's reply for a file the connector could not fetch."""
    shown = " ".join(name.split()) or "a file"
    return f"[{shown}: this file could not be fetched from Slack]"
