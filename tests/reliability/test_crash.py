"""Crash tests: a hub process on an SQLite file is killed with SIGKILL; a new process on the same file finishes the
work. Nothing accepted is lost, nothing is posted twice, and every conversation's messages stay in order.

The Slack emulator runs in this (test) process, so it outlives the hub processes and sees every call they made.
Children run either async backend. Their job leases are short (``--lease``), so the restarted process re-claims
the dead one's jobs quickly; emulator latency is always well below the lease, so a request the dead process left
in flight has landed in Slack before anyone can claim its job again (Slack itself would behave the same).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from norbit_connectors.testing._slack_emulator import SlackEmulator

from ._procs import children, expected, message, relayed, slack_env

BACKENDS = [pytest.param("asyncio", id="child-asyncio"), pytest.param("trio", id="child-trio")]


def _args(backend: str, db: Path, lease: float) -> list[str]:
    return ["--backend", backend, "--store", f"sqlite:{db}", "--lease", str(lease)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_accepted_messages_survive_sigkill_before_delivery(tmp_path: Path, backend: str) -> None:
    conversations = [f"c{n}" for n in range(6)]
    per_conversation = 12
    with SlackEmulator(rate_limits="off") as emu:
        main = emu.add_channel("support", members=[emu.bot_user_id])
        env = slack_env(emu, main)
        args = _args(backend, tmp_path / "hub.sqlite3", lease=3)
        with children((args, env)) as [first]:
            # The channels exist first, so the kill below lands in message delivery (test_crash_windows.py
            # covers the calls that open a channel).
            first.call("accept", "accepted", messages=[message(c, f"u-{c}", 0) for c in conversations])
            first.call("idle", "idle")
            # From now on every Slack call takes 0.5 s: the hub accepts far faster than it can deliver.
            emu.fail_next("*", "latency", times=100_000, delay=0.5)
            rest = [message(c, f"u-{c}", i) for i in range(1, per_conversation) for c in conversations]
            first.call("accept", "accepted", messages=rest)
            first.kill()
        before = relayed(emu)
        emu.clear_faults()
        with children((args, env)) as [second]:
            second.call("idle", "idle")
            second.stop()
        assert sum(map(len, before.values())) < len(conversations) * per_conversation, "killed too late"
        assert relayed(emu) == expected(conversations, per_conversation)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_in_the_middle_of_relaying_a_thousand_messages(tmp_path: Path, backend: str) -> None:
    conversations = [f"c{n}" for n in range(100)]
    per_conversation = 10
    total = len(conversations) * per_conversation
    with SlackEmulator(rate_limits="off") as emu:
        main = emu.add_channel("support", members=[emu.bot_user_id])
        env = slack_env(emu, main)
        args = _args(backend, tmp_path / "hub.sqlite3", lease=2)
        with children((args, env)) as [first]:
            first.call("accept", "accepted", messages=[message(c, f"u-{c}", 0) for c in conversations])
            first.call("idle", "idle")
            # Half the posts take 0.1 s inside Slack: at the kill, some posts are under way, and Slack applies
            # them after the process died, so their results are lost: the jobs, claimed again, look for them.
            emu.faults(0.5, kinds=("latency",), seed=7, methods=["chat.postMessage"], delay=0.1)
            rest = [message(c, f"u-{c}", i) for i in range(1, per_conversation) for c in conversations]
            first.call("accept", "accepted", messages=rest)
            while sum(map(len, relayed(emu).values())) < len(conversations) + (total - len(conversations)) // 3:
                assert first.proc.poll() is None, first.errors()
                time.sleep(0.02)
            first.kill()
        before = sum(map(len, relayed(emu).values()))
        emu.clear_faults()
        with children((args, env)) as [second]:
            done = second.call("idle", "idle")
            second.stop()
        assert before < total, "killed too late"
        assert relayed(emu) == expected(conversations, per_conversation)
        print(f"posted before the kill: {before}/{total}; found already posted after restart: {done['reconciled']}")
