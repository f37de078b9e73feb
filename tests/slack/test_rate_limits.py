"""Bursts under Slack's rate limits arrive complete and in order.

The emulator and our limiter share one clock running twenty times faster than real time, so Slack's
one-message-per-second pace is kept exactly while the test takes seconds. Where the emulator must refuse calls,
the clock moves only when the connector sleeps, so a slow machine cannot let the buckets refill in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from norbit_connectors import Conversation, Hub, Message, User
from norbit_connectors.slack import SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing import SlackEmulator

from .conftest import Workspace

pytestmark = pytest.mark.anyio

SPEED = 20.0


def fast_clock() -> Callable[[], float]:
    start = time.time()
    return lambda: start + (time.time() - start) * SPEED


async def fast_sleep(seconds: float) -> None:
    await anyio.sleep(seconds / SPEED)


class VirtualClock:
    """Time that moves only when the connector sleeps on it: the emulator's buckets refill only then, so its limits
    refuse the same calls however slowly the machine runs them."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


async def burst(ws: Workspace, slack: SlackConnector, count: int) -> list[str]:
    conversation = Conversation(id="c1", user=User(id="u1", name="Burst"))
    async with Hub(store=MemoryStore(), connectors=[slack], retry_base=0.01) as hub:
        for i in range(count):
            await hub.customer_message(conversation, Message(id=f"m{i}", text=f"message {i}"))
        await hub.wait_idle()
        assert await hub.dead_letters() == []
        channel = await slack.channel_for("c1")
    assert channel is not None
    return [m["text"] for m in ws.emu.messages(channel)]


async def test_burst_of_100_under_slack_limits_keeps_to_the_pace() -> None:
    clock = fast_clock()
    with SlackEmulator(rate_limits="slack", clock=clock) as emulator:
        ws = Workspace(emulator)
        slack = SlackConnector(ws.config(), limiter=SlackLimiter(clock=clock, wall_clock=clock, sleep=fast_sleep))
        texts = await burst(ws, slack, 100)
        refused = [c for c in emulator.calls if c.status == 429]
    assert texts == [f"message {i}" for i in range(100)]
    assert refused == []  # our limiter kept within Slack's limits: not a single 429


async def test_burst_beyond_the_limits_recovers_from_429s() -> None:
    # Without our own pacing, the tight profile refuses calls; Retry-After is honoured and nothing is lost.
    clock = VirtualClock()
    with SlackEmulator(rate_limits="tight", clock=clock) as emulator:
        ws = Workspace(emulator)
        slack = SlackConnector(ws.config(), limiter=SlackLimiter(enabled=False, clock=clock, sleep=clock.sleep))
        texts = await burst(ws, slack, 40)
        refused = [c for c in emulator.calls if c.status == 429]
    assert texts == [f"message {i}" for i in range(40)]
    assert refused  # the limits were really hit
