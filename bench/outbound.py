"""Outbound: customer messages through the Hub to Slack vs a plain sequential ``WebClient.chat_postMessage`` loop.

Both post to the same local emulator (rate limits off; the connector's own limiter off too), which runs in a process
of its own (:mod:`bench._emulator_process`): Slack is a remote service, and an emulator serving from threads of the
benchmark's process would charge its own work, under the same GIL, to whichever side keeps more requests in flight.
Set-up and the final check go over its control channel, outside the timed parts. Channel creation is
excluded: one message per conversation is sent first (creating its channel and posting its notice), then the
timed run goes from the first ``customer_message`` call to ``wait_idle()`` returning, i.e. every message durably
accepted, posted to Slack and its job finished. The plain loop posts the same number of messages, with the same
text and username, one after another with one ``WebClient`` to the channels the hub created.

A second pair of rows repeats the comparison with the emulator answering each ``chat.postMessage`` 50 ms late, as a
remote Slack does (its answers take tens to hundreds of milliseconds): there the hub's workers post to different
conversations at once while the loop waits for each answer. Those rows are informative; the target (CPU time per
message, at most 1.5x the loop's) is the first comparison's.

Every hub run is checked: each timed message is in its channel exactly once (the texts counted in the emulator),
and no job was dead-lettered. The plain loop is checked by the emulator's count of its calls.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from slack_sdk import WebClient

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore, SQLiteStore, Store

from ._emulator_process import EmulatorProcess
from ._floor import outbound_floor
from ._table import ratio, run_alone

__all__ = ["run"]


def _sizes(quick: bool) -> tuple[int, int]:
    """(timed messages, conversations)."""
    return (400, 20) if quick else (3_000, 50)


#: How late the emulator answers chat.postMessage in the informative rows.
LATENCY_S = 0.05
#: The target that stands: the hub's CPU time per relayed message at most 1.5x the plain loop's.
CPU_TARGET = 1.5


def _latency_sizes(quick: bool) -> tuple[int, int]:
    """(timed messages, conversations) with answers LATENCY_S late: the plain loop takes n * LATENCY_S."""
    return (80, 20) if quick else (400, 50)


def _conversation(c: int) -> Conversation:
    return Conversation(id=f"conv-{c}", user=User(id=f"user-{c}", name=f"Customer {c}"))


PREFIX = "customer message "


async def _hub_run(emu: EmulatorProcess, store: Store, n_messages: int, n_convs: int) -> dict[str, Any]:
    config = SlackConfig(
        bot_token=emu.bot_token,
        signing_secret=emu.signing_secret,
        main_channel=emu.main_channel,
        base_url=emu.base_url,
    )
    slack = SlackConnector(config, limiter=SlackLimiter(enabled=False))
    hub = Hub(store=store, connectors=[slack])
    convs = [_conversation(c) for c in range(n_convs)]
    async with hub:
        for conv in convs:
            await hub.customer_message(conv, Message(id="first", text="hello"))
        await hub.wait_idle()
        channels = [await slack.channel_for(conv.id) for conv in convs]
        before = emu.calls_to("chat.postMessage")
        clock = time.perf_counter
        cpu = time.process_time()
        started = clock()
        for i in range(n_messages):
            conv = convs[i % n_convs]
            await hub.customer_message(conv, Message(id=f"m{i}", text=f"{PREFIX}{i}"))
        accepted = clock() - started
        await hub.wait_idle()
        elapsed = clock() - started
        cpu = time.process_time() - cpu
        dead = await hub.dead_letters()
    posted = emu.calls_to("chat.postMessage") - before
    found, distinct = emu.messages_with_prefix([c for c in channels if c], PREFIX)
    if posted != n_messages or found != n_messages or distinct != n_messages or dead:
        raise RuntimeError(
            f"{posted} of {n_messages} messages posted, {found} found in Slack ({distinct} distinct); "
            f"{len(dead)} dead letters"
        )
    return {
        "messages": n_messages,
        "messages_per_s": n_messages / elapsed,
        "accept_per_s": n_messages / accepted,
        "cpu_ms_per_msg": cpu * 1e3 / n_messages,
        "channels": [c for c in channels if c],
    }


def _plain_loop(emu: EmulatorProcess, channels: list[str], n_messages: int) -> dict[str, Any]:
    client = WebClient(token=emu.bot_token, base_url=emu.base_url)
    client.chat_postMessage(channel=channels[0], text="warm-up", username="Customer 0")
    before = emu.calls_to("chat.postMessage")
    clock = time.perf_counter
    cpu = time.process_time()
    started = clock()
    for i in range(n_messages):
        c = i % len(channels)
        client.chat_postMessage(channel=channels[c], text=f"{PREFIX}{i}", username=f"Customer {c}")
    elapsed = clock() - started
    cpu = time.process_time() - cpu
    posted = emu.calls_to("chat.postMessage") - before
    if posted != n_messages:
        raise RuntimeError(f"{posted} of {n_messages} messages posted by the plain loop")
    return {"messages": n_messages, "messages_per_s": n_messages / elapsed, "cpu_ms_per_msg": cpu * 1e3 / n_messages}


def run(quick: bool = False, *, profile: Callable[[str], Any] | None = None) -> dict[str, Any]:
    n_messages, n_convs = _sizes(quick)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with EmulatorProcess(rate_limits="off") as emu:
            store = SQLiteStore(Path(tmp) / "outbound.sqlite3")
            if profile is not None:
                with profile("outbound"):
                    sqlite = anyio.run(_hub_run, emu, store, n_messages, n_convs)
            else:
                sqlite = anyio.run(_hub_run, emu, store, n_messages, n_convs)
        with EmulatorProcess(rate_limits="off") as emu:
            memory = anyio.run(_hub_run, emu, MemoryStore(), n_messages, n_convs)
            plain = _plain_loop(emu, memory["channels"], n_messages)
            floor = outbound_floor(emu, Path(tmp) / "floor.sqlite3", memory["channels"], n_messages)
        n_slow, n_slow_convs = _latency_sizes(quick)
        with EmulatorProcess(rate_limits="off") as emu:
            emu.set_latency(LATENCY_S)
            slow = anyio.run(_hub_run, emu, SQLiteStore(Path(tmp) / "latency.sqlite3"), n_slow, n_slow_convs)
            slow_plain = _plain_loop(emu, slow["channels"], n_slow)
    for row in (sqlite, memory, slow):
        row.pop("channels")
    late = f", answers {LATENCY_S * 1e3:.0f} ms late"
    rows.append({"impl": "Hub + SlackConnector, SQLiteStore", **sqlite})
    rows.append({"impl": "Hub + SlackConnector, MemoryStore", **memory})
    rows.append({"impl": "plain WebClient.chat_postMessage loop", **plain})
    rows.append({"impl": "floor: SQLite outbox, 8 threads posting", **floor})
    rows.append({"impl": f"Hub + SlackConnector, SQLiteStore{late}", **slow})
    rows.append({"impl": f"plain WebClient.chat_postMessage loop{late}", **slow_plain})
    ratios = [
        ratio(
            "CPU per message hub SQLiteStore / plain loop",
            sqlite["cpu_ms_per_msg"],
            plain["cpu_ms_per_msg"],
            baseline="sequential WebClient.chat_postMessage CPU time per message",
            target=CPU_TARGET,
            higher_is_better=False,
        ),
        ratio(
            "CPU per message hub MemoryStore / plain loop",
            memory["cpu_ms_per_msg"],
            plain["cpu_ms_per_msg"],
            baseline="sequential WebClient.chat_postMessage CPU time per message",
            target=CPU_TARGET,
            higher_is_better=False,
        ),
        ratio(
            "hub SQLiteStore / plain loop (informative)",
            sqlite["messages_per_s"],
            plain["messages_per_s"],
            baseline="sequential WebClient.chat_postMessage messages/s",
            target=None,
        ),
        ratio(
            "hub MemoryStore / plain loop (informative)",
            memory["messages_per_s"],
            plain["messages_per_s"],
            baseline="sequential WebClient.chat_postMessage messages/s",
            target=None,
        ),
        ratio(
            "floor / plain loop (informative)",
            floor["messages_per_s"],
            plain["messages_per_s"],
            baseline="sequential WebClient.chat_postMessage messages/s",
            target=None,
        ),
        ratio(
            f"hub SQLiteStore / plain loop{late} (informative)",
            slow["messages_per_s"],
            slow_plain["messages_per_s"],
            baseline=f"sequential WebClient.chat_postMessage messages/s{late}",
            target=None,
        ),
    ]
    notes = [
        f"{n_messages} messages over {n_convs} conversations, round-robin; channels and notices created before "
        "the clock starts; timed from the first customer_message() to wait_idle(); hub workers=8 (default)",
        "accept_per_s: rate of the customer_message() calls alone (durable commit, before delivery)",
        "cpu_ms_per_msg: CPU time of the benchmark process (all its threads; the emulator's process excluded) "
        "per message in the timed part: the client-side cost, steadier than the rates on a busy machine",
        "the emulator runs in a process of its own (as Slack is remote), used alike by the hub and the plain loop; "
        "every hub message is checked to be in Slack exactly once",
        "floor: bench/_floor.py, a durable outbox with the standard library alone (one SQLite transaction per "
        "message to record it, 8 threads posting with WebClient.chat_postMessage, one transaction per message to "
        "delete it), run right after the plain loop on the same emulator and channels: no ordering per "
        "conversation, no leases, no retries, no transcript; not a product, it shows how far the machine lets "
        "any implementation go",
        f"the last two rows: {n_slow} messages over {n_slow_convs} conversations with every chat.postMessage "
        f"answered {LATENCY_S * 1e3:.0f} ms late, as from a remote Slack; informative, no target",
    ]
    return {"rows": rows, "ratios": ratios, "notes": notes}


def main() -> None:
    run_alone("outbound", run, __doc__)


if __name__ == "__main__":
    main()
