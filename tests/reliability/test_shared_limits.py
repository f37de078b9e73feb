"""Two hub processes on one store post into one Slack channel under Slack's own limits, and pace it together.

The emulator enforces Slack's limits (``rate_limits="slack"``: chat.postMessage about one message per second per
channel after a burst of five, the method tiers per minute). Each process runs the connector's limiter as in
production; the two together must stay within one workspace's limits: not one 429 answered by the emulator, and
every message in the channel exactly once, in order.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from norbit_connectors.testing._slack_emulator import SlackEmulator

from ._procs import Child, children, expected, message, relayed, slack_env

# One customer with four conversations: one channel (channel_per="user"), four queues. Each process runs one
# worker and so holds at most two of them at a time: both post into the channel all along. Four messages each:
# sixteen posts, well past the channel's burst.
CONVERSATIONS = ("u1-a", "u1-b", "u1-c", "u1-d")
PER_CONVERSATION = 4
BACKENDS = [pytest.param("asyncio", id="child-asyncio"), pytest.param("trio", id="child-trio")]
# The processes burst two posts where Slack allows five: three seconds of room for a process that stalls between
# its reservation and its call (a collection, a busy store, a loaded machine) and so bunches its posts with the
# other's. Two processes pacing apart at this burst still post twice Slack's rate (see the test below).
POST_BURST = 2


def _post_together(store: str, backend: str, *, apart: bool = False) -> list[tuple[str, object]]:
    """The posts the emulator refused with 429."""
    with SlackEmulator(rate_limits="slack") as emu:
        main = emu.add_channel("support", members=[emu.bot_user_id])
        env = slack_env(emu, main)
        args = ["--backend", backend, "--store", store, "--lease", "30", "--limiter", "--workers", "1"]
        args += ["--post-burst", str(POST_BURST), *(["--apart"] if apart else [])]
        with children((args, env), (args, env)) as procs:
            # The first message of each conversation through one process (the channel is created once), then
            # the rest split between both, sent at the same moment.
            _accept(procs[0], [message(c, "u1", 0) for c in CONVERSATIONS])
            procs[0].call("idle", "idle")
            batches: list[list[dict[str, str]]] = [[], []]
            for index in range(1, PER_CONVERSATION):
                for n, conversation in enumerate(CONVERSATIONS):
                    batches[n % 2].append(message(conversation, "u1", index))
            for child, batch in zip(procs, batches, strict=True):
                child.send("accept", messages=batch)
            for child, batch in zip(procs, batches, strict=True):
                assert child.read("accepted")["n"] == len(batch)
            for child in procs:
                child.call("idle", "idle")
            for child in procs:
                child.stop()
        refused = [(call.method, call.args.get("channel")) for call in emu.calls if call.status == 429]
        assert relayed(emu) == expected(CONVERSATIONS, PER_CONVERSATION)  # each message exactly once, in order
        channels = {c for c in emu.channels if c != main and emu.messages(c)}
        assert len(channels) == 1  # all of it went into one channel
        return refused


def _accept(child: Child, batch: list[dict[str, str]]) -> None:
    assert child.call("accept", "accepted", messages=batch)["n"] == len(batch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_on_one_sqlite_file_pace_one_channel_together(tmp_path: Path, backend: str) -> None:
    # The emulator's own record: it never had to answer 429.
    assert _post_together(f"sqlite:{tmp_path / 'hub.sqlite3'}", backend) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_on_postgresql_pace_one_channel_together(postgres_dsn: str, backend: str) -> None:
    assert _post_together(f"postgres:{postgres_dsn}", backend) == []


def test_two_processes_pacing_apart_are_refused(tmp_path: Path) -> None:
    # The same posts with each process's cells its own: together they exceed the channel's rate, so the tests
    # above prove the sharing (Retry-After is honoured and nothing is lost either way).
    assert _post_together(f"sqlite:{tmp_path / 'hub.sqlite3'}", "asyncio", apart=True) != []
