"""Rate-limit ceiling: a burst of customer messages against the emulator's Slack rate limits.

Every conversation is new, so each needs ``conversations.create`` (Tier 2), a notice card in the one main channel
(``chat.postMessage``, per channel) and then its messages in its own channel (``chat.postMessage``, per channel).
The wall time, from the first ``customer_message`` call to ``wait_idle()``, is compared with the least time the
emulator's limits allow for the same calls (:func:`minimum_seconds`, computed from ``RATE_PROFILES["slack"]``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import anyio
import attrs

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector
from norbit_connectors.slack._limits import POST_BURST, POST_RATE_PER_SECOND
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack._ratelimit import RATE_PROFILES, RateProfile
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ._table import ratio, run_alone

__all__ = ["minimum_seconds", "run"]

CREATE_TIER = 2


class _Bucket:
    """The emulator's token bucket, in closed form: the earliest time a call at or after ``t`` may go."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = 0.0

    def take_at(self, t: float) -> float:
        at = max(t, self.updated)
        tokens = min(self.capacity, self.tokens + (at - self.updated) * self.rate)
        if tokens < 1.0:
            at += (1.0 - tokens) / self.rate
            tokens = 1.0
        self.tokens = tokens - 1.0
        self.updated = at
        return at


def minimum_seconds(profile: RateProfile, conversations: int, per_conversation: int) -> float:
    """The least wall time the limits allow: conversation k is created, announced in the main channel, then its
    messages are posted; each call as early as its buckets allow (conversations in order, which is optimal here
    because every conversation makes the same calls)."""
    create_capacity, create_rate = profile.tiers[CREATE_TIER]
    post_capacity, post_rate = profile.post_per_channel
    creates = _Bucket(create_capacity, create_rate)
    notices = _Bucket(post_capacity, post_rate)
    end = 0.0
    for _ in range(conversations):
        created = creates.take_at(0.0)
        announced = notices.take_at(created)
        channel = _Bucket(post_capacity, post_rate)
        last = announced
        for _ in range(per_conversation):
            last = channel.take_at(announced)
        end = max(end, last)
    return end


def _sizes(quick: bool) -> tuple[int, int]:
    """(conversations, messages per conversation)."""
    return (6, 10) if quick else (30, 10)


async def _burst(emu: SlackEmulator, main: str, conversations: int, per_conversation: int, workers: int) -> float:
    config = SlackConfig(
        bot_token=emu.bot_token, signing_secret=emu.signing_secret, main_channel=main, base_url=emu.base_url
    )
    slack = SlackConnector(config)  # our own limiter on, as in production
    hub = Hub(store=MemoryStore(), connectors=[slack], workers=workers)
    convs = [
        Conversation(id=f"conv-{c}", user=User(id=f"user-{c}", name=f"Customer {c}")) for c in range(conversations)
    ]
    async with hub:
        emu.clear_calls()
        started = time.perf_counter()
        for m in range(per_conversation):
            for conv in convs:
                await hub.customer_message(conv, Message(id=f"m{m}", text=f"message {m} of {conv.id}"))
        await hub.wait_idle()
        elapsed = time.perf_counter() - started
        dead = await hub.dead_letters()
    if dead:
        raise RuntimeError(f"{len(dead)} dead letters: {dead[0].reason}")
    return elapsed


def _one(conversations: int, per_conversation: int, workers: int) -> dict[str, Any]:
    with SlackEmulator(rate_limits="slack") as emu:
        main = emu.add_channel("support", members=[emu.bot_user_id])
        elapsed = anyio.run(_burst, emu, main, conversations, per_conversation, workers)
        calls = emu.calls
        statuses = Counter(call.status for call in calls)
        posted = 0
        for c in range(conversations):
            found = emu.find_channel(f"customer-{c}")
            if found is not None:
                posted += sum(1 for m in emu.messages(found["id"]) if m["text"].startswith("message "))
        notices = len(emu.messages(main))
    expected = conversations * per_conversation
    profile = RATE_PROFILES["slack"]
    assert profile is not None
    minimum = minimum_seconds(profile, conversations, per_conversation)
    # The same calls paced by our limiter's settings instead of the emulator's (a smaller burst per channel).
    ours = attrs.evolve(profile, post_per_channel=(float(POST_BURST), POST_RATE_PER_SECOND))
    ours_minimum = minimum_seconds(ours, conversations, per_conversation)
    return {
        "messages": expected,
        "conversations": conversations,
        "hub_workers": workers,
        "wall_s": elapsed,
        "minimum_s": minimum,
        "x_minimum": elapsed / minimum if minimum else math.nan,
        "min_at_our_burst_s": ours_minimum,
        "http_429": statuses.get(429, 0),
        "429_on": ",".join(sorted({call.method for call in calls if call.status == 429})) or None,
        "api_calls": len(calls),
        "lost": expected - posted,
        "notices": notices,
    }


def run(quick: bool = False) -> dict[str, Any]:
    conversations, per_conversation = _sizes(quick)
    rows = [_one(conversations, per_conversation, 8)]
    if not quick:
        rows.append(_one(conversations, per_conversation, conversations + 2))
    for row in rows:
        if row["lost"] or row["notices"] != conversations:
            raise RuntimeError(f"messages lost or notices missing: {row}")
    ratios = [
        ratio(
            f"wall / minimum, {row['hub_workers']} workers",
            row["wall_s"],
            row["minimum_s"],
            baseline="least time the emulator's 'slack' limits allow",
            target=1.15,
            higher_is_better=False,
        )
        for row in rows
    ]
    notes = [
        f"{conversations * per_conversation} messages over {conversations} new conversations"
        + (" (scaled down from 300 over 30 for --quick)" if quick else "")
        + "; messages sent round-robin, all accepted before any limit bites",
        "minimum: conversations.create Tier 2 (burst 20, 20/min), notices in the main channel and messages in "
        "each channel 1/s after a burst of 5 (RATE_PROFILES['slack'])",
        "our limiter (slack/_limits.py) allows a burst of 4 per channel where the emulator allows 5: "
        "min_at_our_burst_s is the least time with that burst",
    ]
    return {"rows": rows, "ratios": ratios, "notes": notes}


def main() -> None:
    run_alone("ceiling", run, __doc__)


if __name__ == "__main__":
    main()
