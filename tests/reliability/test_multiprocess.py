"""Three hub processes on one PostgreSQL database, as in a deployment with several web workers.

The host sends customers' messages to whichever process it likes, the first messages of one customer to two
processes at the same moment; Slack delivers its events to random processes, one to four times each (its retries),
concurrently. Result: one channel per customer, every message relayed exactly once and in the order the hub
accepted it, and every agent reply handed to the host exactly once.

Needs a PostgreSQL server: NORBIT_TEST_POSTGRES_DSN names it (CI sets it); each test gets a fresh database.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from norbit_connectors.store import PostgresStore
from norbit_connectors.testing._slack_emulator import SlackEmulator, SlackRequest

from ._procs import Child, children, message, relayed, slack_env

BACKENDS = [pytest.param("asyncio", id="child-asyncio"), pytest.param("trio", id="child-trio")]


def _at_once(work: list[tuple[Child, list[dict[str, str]]]]) -> None:
    """Send each process its batch of customer messages, all at the same time, and wait for every answer."""
    for child, batch in work:
        child.send("accept", messages=batch)
    for child, batch in work:
        assert child.read("accepted")["n"] == len(batch)


def _transcripts(dsn: str, conversations: list[str]) -> dict[str, list[str]]:
    async def read() -> dict[str, list[str]]:
        async with PostgresStore(dsn) as store:
            return {c: [e.message.id for e in await store.transcript(c)] for c in conversations}

    return anyio.run(read)


def _deliver_all(requests: list[tuple[SlackRequest, str]]) -> list[int]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [r.status for r in pool.map(lambda item: item[0].post(item[1]), requests)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_three_processes_share_one_database(postgres_dsn: str, tmp_path: Path, backend: str) -> None:
    rng = random.Random(11)
    users = [f"u{n}" for n in range(8)]
    later = range(2, 6)  # message indexes sent after the race of the first ones
    replies_file = tmp_path / "replies.jsonl"
    with SlackEmulator(rate_limits="off") as emu:
        ann = emu.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        main = emu.add_channel("support", members=[emu.bot_user_id, ann])
        env = slack_env(emu, main, {"ann": ann})
        args = ["--backend", backend, "--store", f"postgres:{postgres_dsn}", "--lease", "5", "--http"]
        args += ["--replies", str(replies_file)]
        with children((args, env), (args, env), (args, env)) as procs:
            # The race: for every customer, the first message of conversation a, the first of conversation b and
            # the second of conversation a reach three different processes at once.
            race: list[list[dict[str, str]]] = [[], [], []]
            for user in users:
                order = rng.sample(range(3), 3)
                race[order[0]].append(message(f"{user}-a", user, 0))
                race[order[1]].append(message(f"{user}-b", user, 0))
                race[order[2]].append(message(f"{user}-a", user, 1))
            _at_once(list(zip(procs, race, strict=True)))
            batches: list[list[dict[str, str]]] = [[], [], []]
            for index in later:
                for user in users:
                    for side in "ab":
                        batches[rng.randrange(3)].append(message(f"{user}-{side}", user, index))
            _at_once(list(zip(procs, batches, strict=True)))
            for child in procs:
                child.call("idle", "idle")

            conversations = [f"{u}-{side}" for u in users for side in "ab"]
            accepted = _transcripts(postgres_dsn, conversations)
            posted = relayed(emu)
            assert posted == accepted  # each message exactly once, in the order the hub accepted them
            assert {c: len(ids) for c, ids in accepted.items()} == {
                c: len(later) + (2 if c.endswith("-a") else 1) for c in conversations
            }
            channel_of = _channels_by_user(emu, main)
            assert sorted(channel_of) == users  # one channel per customer, both conversations in it
            notices = [m for m in emu.messages(main) if m.get("blocks")]

            # Agents answer; Slack delivers every event (and the bot's own echoes) to random processes, 1-4 times.
            requests: list[tuple[SlackRequest, str]] = []
            answers: list[str] = []
            for user, channel in channel_of.items():
                emu.join(channel, ann)
                for k in range(3):
                    text = f"answer {k} for {user}"
                    answers.append(text)
                    event = emu.post_as_user(ann, channel, text)
                    for attempt in range(rng.randint(1, 4)):
                        delivery = event if attempt == 0 else event.retry(attempt)
                        requests.append((delivery, f"http://127.0.0.1:{rng.choice(procs).port}/slack"))
            requests += [(echo, f"http://127.0.0.1:{rng.choice(procs).port}/slack") for echo in emu.take_events()]
            rng.shuffle(requests)
            assert set(_deliver_all(requests)) == {200}
            for child in procs:
                child.call("idle", "idle")
            for child in procs:
                child.stop()
        replies = [json.loads(line) for line in replies_file.read_text().splitlines()]
    assert sorted(r["text"] for r in replies) == sorted(answers)  # each reply reached the host exactly once
    assert len({r["message_id"] for r in replies}) == len(answers)
    assert len({r["pid"] for r in replies}) > 1  # the work really was shared between processes
    assert len(notices) == len(users)  # one notice card per channel


def _channels_by_user(emu: SlackEmulator, main: str) -> dict[str, str]:
    """User id -> the one channel holding all of that customer's messages (fails if there are several)."""
    found: dict[str, set[str]] = {}
    for channel in emu.channels:
        if channel == main:
            continue
        for item in emu.messages(channel):
            payload: dict[str, Any] = (item.get("metadata") or {}).get("event_payload") or {}
            conversation = str(payload.get("conversation_id", ""))
            if conversation:
                found.setdefault(conversation.rsplit("-", 1)[0], set()).add(channel)
    assert all(len(channels) == 1 for channels in found.values()), found
    return {user: channels.pop() for user, channels in found.items()}
