"""A connector that records what the hub asks of it, for hub tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from norbit_connectors._connector import Connector, HttpResponse
from norbit_connectors._events import HubEvent
from norbit_connectors.exceptions import RateLimited, TransportError
from norbit_connectors.store import Batch, Job


class RecordingConnector(Connector):
    name = "rec"
    role = "agent"

    def __init__(self, *, fail_first: int = 0, rate_limit_first: int = 0, delay: float = 0.0) -> None:
        self.events: list[HubEvent] = []
        self.attempts = 0
        self._fail_first = fail_first
        self._rate_limit_first = rate_limit_first
        self._delay = delay

    async def _deliver(self, event: HubEvent, job: Job) -> Batch | None:
        self.attempts += 1
        if self._delay:
            await anyio.sleep(self._delay)
        if self._rate_limit_first > 0:
            self._rate_limit_first -= 1
            raise RateLimited("slow down", retry_after=0.01)
        if self._fail_first > 0:
            self._fail_first -= 1
            raise TransportError("connection reset", code="reset")
        self.events.append(event)
        return None

    async def _process(self, job: Job) -> Batch | None:
        # Inbound "reply" jobs become agent replies for the hub.
        return Batch(jobs=[self.context.hub_job("agent_reply", job.payload["reply"]["conversation_id"], job.payload)])

    async def _handle_http(self, headers: Mapping[str, str], body: bytes, *, method: str, query: str) -> HttpResponse:
        return HttpResponse.text(200, "ok")

    def texts(self) -> list[str]:
        out: list[str] = []
        for event in self.events:
            message: Any = getattr(event, "message", None)
            out.append(message.text if message is not None else type(event).__name__)
        return out
