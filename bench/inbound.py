"""Inbound: signed Events API message events acknowledged by ``SlackConnector.handle_http`` vs ``slack_bolt.App``.

Each event is an agent's message in a channel linked to a customer conversation, so the connector does its full
work: verify the signature, parse, and durably accept the event (inbox key + job) in the store. The hub and its
workers run during the measurement, so the workers turn the accepted events into agent replies for the host
(a users.info lookup against the emulator, a hub job, the host callback) concurrently with the acks, as in
production; the figures are per-request ack latency and the ack rate with requests fed one after another. The
drain time (until every event reached the host) is reported separately.

Bolt gets the same signed requests through ``App.dispatch(BoltRequest(...))`` in the same process, with a no-op
``message`` listener, ``process_before_response=True`` and request verification on.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio

from norbit_connectors import Agent, AgentReply, Conversation, Delivery, Message, User
from norbit_connectors._connector import HttpResponse
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore, SQLiteStore, Store
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ._floor import InboundFloor
from ._table import ratio, run_alone, summarise_latencies

__all__ = ["run"]

Request = tuple[dict[str, str], bytes]
AGENTS = [Agent(id="ann", name="Ann", email="ann@support.example")]
Handler = Callable[[dict[str, str], bytes], Awaitable[HttpResponse]]


def _sizes(quick: bool) -> tuple[int, int, int]:
    """(events timed, warm-up events, linked channels)."""
    return (600, 100, 20) if quick else (5_000, 300, 50)


def _paired_sizes(quick: bool) -> tuple[int, int]:
    """(rounds, events per side and round) of the paired comparison."""
    return (3, 600) if quick else (9, 2_000)


class _Workspace:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.agent = emu.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        self.main = emu.add_channel("support", members=[emu.bot_user_id, self.agent])

    def config(self) -> SlackConfig:
        return SlackConfig(
            bot_token=self.emu.bot_token,
            signing_secret=self.emu.signing_secret,
            main_channel=self.main,
            agent_links={"ann": self.agent},
            base_url=self.emu.base_url,
        )


def _build_events(ws: _Workspace, channels: Sequence[str], count: int, *, start: int) -> list[Request]:
    """``count`` signed message events spread over ``channels``, each with its own event_id."""
    out: list[Request] = []
    for i in range(start, start + count):
        request = ws.emu.post_as_user(ws.agent, channels[i % len(channels)], f"answer number {i}")
        out.append((dict(request.headers), request.body))
    return out


@contextlib.contextmanager
def _harness_objects_frozen() -> Iterator[None]:
    """Keep the benchmark's own objects (the emulator's workspace, the prepared requests) out of the garbage
    collector's scans while measuring: in production they would not share the process. Applied alike to every
    implementation."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _ack_loop(handle: Handler, events: Sequence[Request], in_flight: int = 1) -> tuple[list[float], float]:
    """Feed ``events`` from ``in_flight`` concurrent clients, each sending its next request once the previous one
    is answered (as an HTTP server's connections would); per-request latencies and the total time."""
    latencies: list[float] = []
    clock = time.perf_counter
    feed = iter(events)

    async def client() -> None:
        for headers, body in feed:
            t0 = clock()
            response = await handle(headers, body)
            latencies.append(clock() - t0)
            if response.status != 200:
                raise RuntimeError(f"handle_http answered {response.status}: {response.body!r}")

    with _harness_objects_frozen():
        started = clock()
        if in_flight == 1:
            await client()
        else:
            async with anyio.create_task_group() as tg:
                for _ in range(in_flight):
                    tg.start_soon(client)
        return latencies, clock() - started


async def _linked_channels(
    ws: _Workspace, hub: Hub, slack: SlackConnector, n_channels: int, *, prefix: str
) -> list[str]:
    """The channels of ``n_channels`` new conversations (one customer message each), with the agent in each."""
    for c in range(n_channels):
        conv = Conversation(id=f"{prefix}-{c}", user=User(id=f"{prefix}-user-{c}", name=f"Customer {c}"))
        await hub.customer_message(conv, Message(id="m0", text="hello"))
    await hub.wait_idle()
    channels: list[str] = []
    for c in range(n_channels):
        channel = await slack.channel_for(f"{prefix}-{c}")
        assert channel is not None
        ws.emu.join(channel, ws.agent)
        channels.append(channel)
    return channels


async def _norbit(
    ws: _Workspace, store: Store, n_events: int, warmup: int, n_channels: int, in_flight: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two rows: with the hub's workers running (full work), then the acks alone with no worker running."""
    replies = 0

    async def on_agent_reply(reply: AgentReply) -> Delivery | None:
        nonlocal replies
        if reply.agent is not None and reply.agent.id == "ann" and reply.message.text.startswith("answer number "):
            replies += 1
        return None

    slack = SlackConnector(ws.config(), limiter=SlackLimiter(enabled=False))
    hub = Hub(store=store, connectors=[slack], agents=AGENTS, on_agent_reply=on_agent_reply)
    async with hub:
        channels = await _linked_channels(ws, hub, slack, n_channels, prefix="conv")
        events = _build_events(ws, channels, warmup + n_events, start=0)
        await _ack_loop(slack.handle_http, events[:warmup], in_flight)
        await hub.wait_idle()
        replies = 0
        started = time.perf_counter()
        latencies, acked = await _ack_loop(slack.handle_http, events[warmup:], in_flight)
        await hub.wait_idle()
        drained = time.perf_counter() - started
        dead = await hub.dead_letters()
    if replies != n_events or dead:
        raise RuntimeError(f"{replies} of {n_events} events reached the host; {len(dead)} dead letters")
    full = {
        "events": n_events,
        "events_per_s": n_events / acked,
        **summarise_latencies(latencies),
        "drained_per_s": n_events / drained,
    }

    # The same connector attached to a hub that is not running: only the acks (verify, parse, durable accept)
    # compete for the process. The accepted jobs stay in the store, counted below.
    idle = Hub(store=store, connectors=[slack], agents=AGENTS)
    events = _build_events(ws, channels, n_events, start=warmup + n_events)
    await store.open()
    try:
        await slack.start(idle._context)
        try:
            before = await store.pending_jobs()
            latencies, acked = await _ack_loop(slack.handle_http, events, in_flight)
            accepted = await store.pending_jobs() - before
        finally:
            await slack.stop()
    finally:
        await store.close()
    if accepted != n_events:
        raise RuntimeError(f"{accepted} of {n_events} events were accepted into the store")
    ack_only = {"events": n_events, "events_per_s": n_events / acked, **summarise_latencies(latencies)}
    return full, ack_only


class _Bolt:
    """Bolt's synchronous App (request verification on, ``process_before_response=True``, a no-op ``message``
    listener), fed sequentially or, as a threaded server would, from ``in_flight`` threads."""

    def __init__(self, ws: _Workspace) -> None:
        from slack_bolt import App
        from slack_sdk import WebClient

        self.handled = 0
        self.latencies: list[float] = []
        counted = threading.Lock()
        self.app = App(
            signing_secret=ws.emu.signing_secret,
            client=WebClient(token=ws.emu.bot_token, base_url=ws.emu.base_url),
            token_verification_enabled=False,
            process_before_response=True,
        )

        @self.app.event("message")
        def on_message(event: dict[str, Any]) -> None:
            with counted:
                self.handled += 1

    def _dispatch(self, request: Request) -> None:
        from slack_bolt import BoltRequest

        headers, body = request
        t0 = time.perf_counter()
        response = self.app.dispatch(BoltRequest(body=body.decode("utf-8"), headers=_bolt_headers(headers)))
        self.latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            raise RuntimeError(f"Bolt answered {response.status}: {response.body!r}")

    def feed(self, batch: Sequence[Request], in_flight: int = 1) -> float:
        """Dispatch ``batch``; the time it took. Every event must reach the listener."""
        self.handled = 0
        self.latencies.clear()
        with _harness_objects_frozen():
            started = time.perf_counter()
            if in_flight == 1:
                for request in batch:
                    self._dispatch(request)
            else:
                with ThreadPoolExecutor(max_workers=in_flight) as pool:
                    for _ in pool.map(self._dispatch, batch):
                        pass
            elapsed = time.perf_counter() - started
        if self.handled != len(batch):
            raise RuntimeError(f"Bolt's listener ran {self.handled} times for {len(batch)} events")
        return elapsed


def _bolt(ws: _Workspace, channels: Sequence[str], n_events: int, warmup: int, in_flight: int) -> dict[str, Any]:
    bolt = _Bolt(ws)
    events = _build_events(ws, channels, warmup + n_events, start=1_000_000 * in_flight)
    bolt.feed(events[:warmup], in_flight)
    elapsed = bolt.feed(events[warmup:], in_flight)
    return {"events": n_events, "events_per_s": n_events / elapsed, **summarise_latencies(bolt.latencies)}


#: The sides of the paired rounds: ours, Bolt, and the floor (:class:`bench._floor.InboundFloor`).
SIDES = ("ours", "bolt", "floor")


async def _paired(
    ws: _Workspace, store: Store, floor_path: Path, n_channels: int, rounds: int, batch: int
) -> list[dict[str, tuple[float, float]]]:
    """Per round, each side's wall time and CPU time for ``batch`` events, measured back to back: our ack-only
    run (SQLiteStore, IN_FLIGHT in flight), Bolt's sequential run and the floor's run (IN_FLIGHT in flight), the
    order rotating from round to round, so that every ratio of one round meets the same machine: on a shared
    machine a rate moves by tens of percent within a minute. CPU time is what the rates would be on a core of
    their own (no side waits for the emulator)."""
    slack = SlackConnector(ws.config(), limiter=SlackLimiter(enabled=False))
    hub = Hub(store=store, connectors=[slack], agents=AGENTS)
    async with hub:
        channels = await _linked_channels(ws, hub, slack, n_channels, prefix="pair")
    bolt = _Bolt(ws)
    bolt_channels = _bolt_channels(ws, n_channels, prefix="pair-bolt")
    floor = await InboundFloor.open(floor_path, ws.emu.signing_secret)
    idle = Hub(store=store, connectors=[slack], agents=AGENTS)
    measured: list[dict[str, tuple[float, float]]] = []
    cpu = time.process_time

    async def side(name: str, events: Sequence[Request]) -> tuple[float, float]:
        cpu_before = cpu()
        if name == "bolt":
            wall = bolt.feed(events)
        else:
            _, wall = await _ack_loop(slack.handle_http if name == "ours" else floor.handle, events, IN_FLIGHT)
        return wall, cpu() - cpu_before

    await store.open()
    try:
        await slack.start(idle._context)
        try:
            start = 2_000_000
            for warm_up in SIDES:
                start += batch
                await side(
                    warm_up, _build_events(ws, bolt_channels if warm_up == "bolt" else channels, batch, start=start)
                )
            for r in range(rounds):
                events = {}
                for name in SIDES:
                    start += batch
                    events[name] = _build_events(ws, bolt_channels if name == "bolt" else channels, batch, start=start)
                before = await store.pending_jobs(), floor.accepted()
                round_: dict[str, tuple[float, float]] = {}
                for name in SIDES[r % len(SIDES) :] + SIDES[: r % len(SIDES)]:
                    round_[name] = await side(name, events[name])
                if (await store.pending_jobs() - before[0], floor.accepted() - before[1]) != (batch, batch):
                    raise RuntimeError("not every event of a paired round was accepted into the store")
                measured.append(round_)
        finally:
            await slack.stop()
    finally:
        await store.close()
        floor.close()
    return measured


def _bolt_headers(headers: dict[str, str]) -> dict[str, str | Sequence[str]]:
    return dict(headers)


def _bolt_channels(ws: _Workspace, n_channels: int, *, prefix: str = "bolt") -> list[str]:
    channels = []
    for c in range(n_channels):
        channel = ws.emu.add_channel(f"{prefix}-{c}", members=[ws.emu.bot_user_id, ws.agent])
        channels.append(channel)
    return channels


#: Requests in flight at once in the concurrent rows: what a server sees when Slack delivers a busy workspace's
#: events over many connections.
IN_FLIGHT = 32
#: The target that stands: our acknowledgement (durable commit included) at least 1.3x Bolt's events/s, paired.
THROUGHPUT_TARGET = 1.3


def run(quick: bool = False, *, profile: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Measure every row; ``profile(name)`` may return a context manager wrapped around the SQLite rows."""
    n_events, warmup, n_channels = _sizes(quick)
    rows: list[dict[str, Any]] = []
    measured: dict[tuple[str, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    with SlackEmulator(rate_limits="off") as emu, tempfile.TemporaryDirectory() as tmp:
        ws = _Workspace(emu)
        for in_flight in (1, IN_FLIGHT):
            sqlite_path = Path(tmp) / f"inbound-{in_flight}.sqlite3"
            args = (ws, SQLiteStore(sqlite_path), n_events, warmup, n_channels, in_flight)
            if profile is not None:
                with profile(f"inbound-{in_flight}"):
                    measured["SQLiteStore", in_flight] = anyio.run(_norbit, *args)
            else:
                measured["SQLiteStore", in_flight] = anyio.run(_norbit, *args)
            measured["MemoryStore", in_flight] = anyio.run(
                _norbit, ws, MemoryStore(), n_events, warmup, n_channels, in_flight
            )
        bolt_channels = _bolt_channels(ws, n_channels)
        bolt = {in_flight: _bolt(ws, bolt_channels, n_events, warmup, in_flight) for in_flight in (1, IN_FLIGHT)}
        rounds, batch = _paired_sizes(quick)
        paired = anyio.run(
            _paired,
            ws,
            SQLiteStore(Path(tmp) / "paired.sqlite3"),
            Path(tmp) / "floor.sqlite3",
            n_channels,
            rounds,
            batch,
        )
    for in_flight in (1, IN_FLIGHT):
        for store in ("SQLiteStore", "MemoryStore"):
            full, ack_only = measured[store, in_flight]
            rows.append({"impl": f"norbit handle_http, {store}", "in_flight": in_flight, **full})
            rows.append({"impl": f"norbit handle_http, {store}, ack only", "in_flight": in_flight, **ack_only})
    rows.append({"impl": "slack_bolt App.dispatch", "in_flight": 1, **bolt[1]})
    rows.append({"impl": f"slack_bolt App.dispatch, {IN_FLIGHT} threads", "in_flight": IN_FLIGHT, **bolt[IN_FLIGHT]})
    best_bolt = max(bolt.values(), key=lambda row: float(row["events_per_s"]))
    best_name = "slack_bolt App.dispatch" + ("" if best_bolt is bolt[1] else f", {IN_FLIGHT} threads")
    ours = f"SQLiteStore ack only, {IN_FLIGHT} in flight"
    floor = f"floor, {IN_FLIGHT} in flight"
    bolt_seq = "slack_bolt App.dispatch, sequential, measured back to back"
    # (name, the side measured, the side it is compared with, wall time or CPU time, baseline, target)
    paired_ratios = (
        (f"throughput {ours} / Bolt", "ours", "bolt", 0, f"{bolt_seq}: events/s", THROUGHPUT_TARGET),
        (f"CPU per event Bolt / {ours} (informative)", "ours", "bolt", 1, f"{bolt_seq}: CPU time per event", None),
        (f"throughput {floor} / Bolt (informative)", "floor", "bolt", 0, f"{bolt_seq}: events/s", None),
        (f"CPU per event Bolt / {floor} (informative)", "floor", "bolt", 1, f"{bolt_seq}: CPU time per event", None),
        (f"throughput {ours} / {floor} (informative)", "ours", "floor", 0, "the floor's events/s", None),
    )
    per_round = {
        name: [r[other][which] / r[side][which] for r in paired] for name, side, other, which, _, _ in paired_ratios
    }
    ratios = [
        {
            **ratio(
                f"{name}, paired (median of {len(paired)})",
                statistics.median(per_round[name]),
                1.0,
                baseline=baseline,
                target=target,
            ),
            "rounds": [round(r, 3) for r in per_round[name]],
        }
        for name, _, _, _, baseline, target in paired_ratios
    ]
    for in_flight in (IN_FLIGHT, 1):
        full, ack_only = measured["SQLiteStore", in_flight]
        for label, row in (("ack only", ack_only), ("with workers", full)):
            name = f"SQLiteStore {label}, {in_flight} in flight"
            ratios.append(
                ratio(
                    f"throughput {name} / best Bolt (informative)",
                    row["events_per_s"],
                    best_bolt["events_per_s"],
                    baseline=f"{best_name} events/s",
                    target=None,
                )
            )
            ratios.append(
                ratio(
                    f"p99 ack {name} / 5 ms",
                    row["p99_ms"],
                    5.0,
                    baseline="5 ms (spec target)",
                    target=1.0,
                    higher_is_better=False,
                )
            )
    notes = [
        f"each implementation is fed from 1 client (one request after another) and from {IN_FLIGHT} concurrent "
        f"clients (asyncio tasks for norbit, a pool of {IN_FLIGHT} threads for Bolt's synchronous App); the "
        "throughput ratios compare with the faster of Bolt's two rows",
        "the hub's workers run meanwhile and process every event to the host callback; drained_per_s counts "
        "until wait_idle() returned",
        "'ack only': the same connector attached to a hub that is not running, so no worker competes; the events "
        "are verified, parsed and durably accepted (checked by counting the jobs in the store)",
        f"{n_events} timed events after {warmup} warm-up events, over {n_channels} linked channels",
        f"paired: {len(paired)} rounds of {batch} events per side: our ack-only run and the floor's ({IN_FLIGHT} in "
        "flight each) and Bolt's sequential run, back to back, the order rotating; each round's ratios: "
        + "; ".join(f"{name}: " + ", ".join(f"{r:.2f}" for r in values) for name, values in per_round.items()),
        "floor: bench/_floor.py, the same acknowledgement (signature, json.loads, inbox and job rows in one SQLite "
        "transaction per turn of the event loop, SQLiteStore's schema) with the standard library alone: no typed "
        "events, no hub, asyncio only; not a product, it shows how far the machine lets any implementation go",
    ]
    return {"rows": rows, "ratios": ratios, "notes": notes}


def main() -> None:
    run_alone("inbound", run, __doc__)


if __name__ == "__main__":
    main()
