"""The token shapes masked in every log record and dead-letter reason: every shape is masked in any text, and
ordinary messages (real log and error lines of Telegram, Slack, Meta, httpx, uvicorn) come out unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._reasons import clean_reason
from norbit_connectors._redact import MASK, redact

ORDINARY = [
    "Forbidden: bot was blocked by the user",
    "Forbidden: bot was kicked from the group chat",
    "Forbidden: bot can't initiate conversation with a user",
    "Unauthorized (is the bot token right?)",
    "Bad Request: chat not found",
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    "Too Many Requests: retry after 35",
    "Basic auth failed",
    "OAuth flow done",
    "Authorization: failed, retrying",
    "Authorization: required",
    "Authorization header missing",
    "Bearer token expired",
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "PermissionDenied: missing_scope",
    "The request to the Slack API failed. (url: https://slack.com/api/chat.postMessage)",
    "The server responded with: {'ok': False, 'error': 'channel_not_found'}",
    "xapp-level tokens need connections:write",
    "checkboxapp-x was clicked",
    "(#100) Param recipient must be a valid ID",
    "(#190) Error validating access token: Session has expired on Friday, 04-Dec-26 09:00:00 PST.",
    "(#10) This message is sent outside of allowed window.",
    "Invalid OAuth access token - Cannot parse access token",
    "Message failed to send because more than 24 hours have passed since the customer last replied",
    'HTTP Request: POST https://api.telegram.org/file "HTTP/1.1 200 OK"',
    "Retrying request to /v21.0/me in 0.5 seconds",
    "connect_tcp.started host='127.0.0.1' port=51234 local_address=None timeout=5.0 socket_options=None",
    "receive_response_headers.complete return_value=(b'HTTP/1.1', 200, b'OK', [(b'content-type', b'json')])",
    "All connection attempts failed",
    "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
    "Invalid HTTP request received.",
    '127.0.0.1:50412 - "POST /telegram HTTP/1.1" 401 Unauthorized',
    "Application startup complete.",
    "Waiting for connections to close. (CTRL+C to force quit)",
    "max_tokens=100 tokens: 42 secret_santa=no",
    "postgresql://postgres@127.0.0.1:55432/postgres",
    "a photo at 12:30:05 on 2026-12-04",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_messages_come_out_unchanged(text: str) -> None:
    assert redact(text) == text
    assert clean_reason(text) == text


@given(st.lists(st.sampled_from(ORDINARY), min_size=1, max_size=6), st.sampled_from([" ", "\n", "; ", ": "]))
def test_ordinary_messages_together_come_out_unchanged(lines: list[str], separator: str) -> None:
    text = separator.join(lines)
    assert redact(text) == text


TOKENS = {
    "slack bot": "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack app": "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef",
    "telegram": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "meta": "EAAGm0PX4ZCpsBAKZAxZBq0ZCWkZBZAqZBZBjZA5ZC3ZB8ZC",
    "discord": "MTA4NzY1NDMyMTAxMjM0NTY3OA.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB",
}


def shapes(token: str, alone: str, credential: str) -> list[str]:
    return [
        alone,
        f"Authorization: {credential}",
        f"authorization={token}",
        credential,
        f"?hub.verify_token={token}&x=1",
        f"access_token={token}",
        f'{{"access_token": "{token}"}}',
        f"{{'client_secret': '{token}'}}",
        f'"password":"{token}"',
        f"https://user:{token}@example.com/x",
    ]


@given(
    kind=st.sampled_from(sorted(TOKENS)),
    shape=st.integers(0, 9),
    before=st.sampled_from(["", " ", "failed: ", "(", "GET /x ", "\n", "'", '"', "[", "= "]),
    after=st.sampled_from(["", " ", " refused", ")", "/getMe", "\n", "'", '"', ",", "."]),
    noise=st.text(alphabet=st.characters(codec="ascii", categories=["Zs", "Ll", "Lu", "Nd"]), max_size=20),
)
def test_every_token_shape_in_any_text_is_masked(kind: str, shape: int, before: str, after: str, noise: str) -> None:
    token = TOKENS[kind]
    bare = f"Bot {token}" if kind == "discord" else token
    credential = f"Bot {token}" if kind == "discord" else f"Bearer {token}"
    text = f"{noise} {before}{shapes(token, bare, credential)[shape]}{after} {noise}"
    masked = redact(text)
    assert token not in masked, masked
    assert MASK in masked
    assert token not in clean_reason(text)


def test_shapes_keep_what_is_around_the_token() -> None:
    token = TOKENS["meta"]
    assert (
        redact(f"GET /me?hub.verify_token={token}&hub.challenge=5")
        == f"GET /me?hub.verify_token={MASK}&hub.challenge=5"
    )
    assert redact(f'{{"access_token": "{token}", "n": 1}}') == f'{{"access_token": "{MASK}", "n": 1}}'
    assert redact("{'token': 'plain-words-are-secret-here'}") == f"{{'token': '{MASK}'}}"
    assert redact("postgresql://app:hunter2hunter2@db:5432/x") == f"postgresql://app:{MASK}@db:5432/x"
    assert redact(f"Authorization: Bearer {token}, retrying") == f"Authorization: {MASK}, retrying"
    assert redact(f"sent with Bearer {token} now") == f"sent with Bearer {MASK} now"
    assert redact("Authorization: Basic dXNlcjpwYXNzd29yZA==") == f"Authorization: {MASK}"
    assert redact("token=xoxb-1234-5678-abcdefghijkl") == f"token={MASK}"
    assert redact("/botx 123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/") == f"/botx {MASK}/"
