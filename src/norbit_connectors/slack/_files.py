"""Which file URLs the connector fetches with the bot token (pure).

A ``file_share`` event names its files' ``url_private`` / ``url_private_download``, and fetching them needs the
bot token. The token goes only where Slack serves files: ``https://files.slack.com``, and the origin of the
configured ``base_url`` (Slack itself, or a local emulator in tests). Anything else (another host, another port,
``file:``, ``ftp:``, credentials in the URL, spaces or backslashes that parsers read differently) is refused
before any connection is made; redirects are not followed at all (see :meth:`SlackTransport.download`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["MAX_FILE_URL_LENGTH", "SLACK_FILES_ORIGIN", "file_note", "may_fetch", "origin"]

#: The origin Slack serves private files from.
SLACK_FILES_ORIGIN = ("https", "files.slack.com", 443)
#: Longest file URL the connector fetches.
MAX_FILE_URL_LENGTH = 8192

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an ``http(s)`` ``url`` in lower case, or None when it has none we trust:
    another scheme, credentials, no host, a bad port, or characters outside printable ASCII, spaces and
    backslashes (which parsers disagree about)."""
    if not url or len(url) > MAX_FILE_URL_LENGTH or "\\" in url:
        return None
    if any(not ("\x21" <= char <= "\x7e") for char in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def may_fetch(url: str, *, base_url: str) -> bool:
    """Whether ``url`` may be fetched with the bot token: it is on ``https://files.slack.com`` or on the
    origin of ``base_url``."""
    found = origin(url)
    return found is not None and found in (SLACK_FILES_ORIGIN, origin(base_url))


def file_note(name: str) -> str:
    """The line added to an agent's reply for a file the connector could not fetch."""
    shown = " ".join(name.split()) or "a file"
    return f"[{shown}: this file could not be fetched from Slack]"
