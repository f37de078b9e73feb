"""Junk in the job queue: a job whose payload can never be decoded is parked as a dead letter, and the workers
keep delivering everything else (including the rest of that job's own queue)."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.store import Batch, NewJob, SQLiteStore

from ._procs import expected, relayed
from .conftest import Slack

pytestmark = pytest.mark.anyio

HUB_EVENT_KINDS = [
    "take_over",
    "customer_message",
    "agent_message",
    "bot_message",
    "archived",
    "assignment",
    "notified",
    "deliver_reply",
]
SLACK_KINDS = ["in.event", "in.archive", "in.join"]
HUB_KINDS = ["agent_reply", "archived_remotely", "customer_message", "agent_edit", "agent_delete", "claim"]


def _junk_payload(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False, 0, -1, 2**70, 1.5e308])
    if choice == 2:
        return "".join(rng.choice('ab\x00\u2028é"{}') for _ in range(rng.randrange(6)))
    if choice == 3:
        return {"conversation": "c1", "message": {"id": ""}}
    if choice == 4:
        return {"reply": {"conversation_id": 1}, "event": [], "channel": None}
    if choice == 5:
        return [_junk_payload(rng, depth + 1) for _ in range(rng.randrange(3))]
    keys = ["conversation", "message", "reply", "event", "event_id", "conversation_id", "user_id", "x"]
    return {rng.choice(keys): _junk_payload(rng, depth + 1) for _ in range(rng.randrange(4))}


async def test_junk_jobs_are_parked_and_the_rest_is_delivered(slack: Slack, tmp_path: Path) -> None:
    rng = random.Random(5)
    connector = slack.connector()
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    hub = Hub(store=store, connectors=[connector], retry_base=0.01, max_attempts=2)
    conversations = [Conversation(id=f"c{n}", user=User(id=f"u{n}", name=f"Customer {n}")) for n in range(4)]
    junk: list[NewJob] = []
    for n in range(120):
        connector_name, kinds = rng.choice([("slack", HUB_EVENT_KINDS + SLACK_KINDS), ("hub", HUB_KINDS)])
        payload = _junk_payload(rng)
        # Junk shares the queues of real conversations: a parked job must not hold back what follows it.
        junk.append(
            NewJob(
                queue_key=f"{connector_name}:c{n % 4}",
                connector=connector_name,
                kind=rng.choice(kinds),
                payload=payload if isinstance(payload, dict) else {"value": payload},
            )
        )
    async with hub:
        for index in range(3):
            await store.commit(Batch(jobs=junk[index::3]), now=0.0)
            for conv in conversations:
                await hub.customer_message(conv, Message(id=f"{conv.id}-m{index}", text=f"message {index}"))
        await hub.wait_idle()
        parked = await hub.dead_letters()
        assert await store.pending_jobs() == 0
    assert relayed(slack.emu) == expected([c.id for c in conversations], 3)
    assert parked  # junk was really rejected, not silently accepted
    assert all(p.reason for p in parked)


async def test_a_job_row_that_is_not_json_is_parked_not_fatal(slack: Slack, tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    connector = slack.connector()
    hub = Hub(store=SQLiteStore(path), connectors=[connector], retry_base=0.01, max_attempts=2)
    conv = Conversation(id="c1", user=User(id="u1", name="Customer"))
    async with hub:
        await hub.customer_message(conv, Message(id="c1-m0", text="before"))
        await hub.wait_idle()
    # Damage: a row whose payload is not JSON at all (written by something other than the store).
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO jobs (queue_key, connector, kind, payload, not_before, created_at) VALUES (?, ?, ?, ?, 0, 0)",
            ("slack:c1", "slack", "customer_message", "{not json" + json.dumps("x")),
        )
    hub = Hub(store=SQLiteStore(path), connectors=[connector], retry_base=0.01, max_attempts=2)
    async with hub:
        await hub.customer_message(conv, Message(id="c1-m1", text="after"))
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert relayed(slack.emu) == expected(["c1"], 2)
    assert len(parked) == 1
