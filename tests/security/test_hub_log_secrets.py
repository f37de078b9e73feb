"""No token reaches a log line when a connector's error quotes one: neither the hub's line for a failed attempt
(with its traceback) nor the dead letter's, at DEBUG, for tokens of a known shape no connector registered."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from norbit_connectors import Conversation, Message, User
from norbit_connectors._events import HubEvent
from norbit_connectors._redact import MASK, SecretFilter, redact
from norbit_connectors.hub import Hub
from norbit_connectors.store import Job
from tests.hub._recording import RecordingConnector

pytestmark = pytest.mark.anyio

SLACK_TOKEN = "xoxb-1234-5678-abcdefghijkl"
TELEGRAM_TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


class Formatted(logging.Handler):
    """Every record as a handler writes it: message and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Formatted]:
    handler = Formatted()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


class Quoting(RecordingConnector):
    """Fails every delivery with an error that quotes a token, as a library quoting its request would."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    async def _deliver(self, event: HubEvent, job: Job) -> None:
        self.attempts += 1
        raise RuntimeError(self.text)


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (f"Authorization: Bearer {SLACK_TOKEN} refused", SLACK_TOKEN),
        (f"POST https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage failed", TELEGRAM_TOKEN),
        ("GET https://graph.facebook.com/v21.0/me?access_token=EAAGm0PX4ZCpsBAp&x=1 failed", "EAAGm0PX4ZCpsBAp"),
    ],
)
async def test_a_token_quoted_by_a_failing_attempt_is_masked_in_every_line_and_traceback(
    captured: Formatted, text: str, token: str
) -> None:
    connector = Quoting(text)
    async with Hub(connectors=[connector], max_attempts=3, retry_base=0.001) as hub:
        await hub.customer_message(
            Conversation(id="c1", user=User(id="u1", name="Zoë")), Message(id="m1", text="hello")
        )
        await hub.wait_idle()
        assert len(await hub.dead_letters()) == 1
    assert connector.attempts == 3
    retries = [line for line in captured.lines if "raised (attempt" in line]
    assert len(retries) == 2
    assert all("Traceback" in line and "RuntimeError" in line and MASK in line for line in retries)
    assert any("parked as a dead letter" in line for line in captured.lines)
    for line in captured.lines:
        assert token not in line, line


def test_a_handlers_filter_masks_tokens_in_a_traceback_formatted_already() -> None:
    record = logging.LogRecord("host", logging.ERROR, __file__, 1, "failed", None, None)
    record.exc_text = f"Traceback ...\nRuntimeError: Authorization: Bearer {SLACK_TOKEN}"
    assert SecretFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert SLACK_TOKEN not in line
    assert MASK in line


def test_redact_masks_tokens_of_a_known_shape_nobody_registered() -> None:
    assert redact(f"token={SLACK_TOKEN}") == f"token={MASK}"
    assert SLACK_TOKEN not in redact(f"x {SLACK_TOKEN} y")
    assert redact("PermissionDenied: missing_scope") == "PermissionDenied: missing_scope"
