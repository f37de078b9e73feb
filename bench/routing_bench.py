"""Routing engine benchmark: decisions per second, peak memory, and per-decision cost as agents grow.

Run ``python -m bench.routing_bench`` (add ``--quick`` for a run of a few seconds). ``run(quick)`` returns the
figures as a dict.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from norbit_connectors import Agent
from norbit_connectors.routing import Routing, RoutingEngine

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_agents(count: int, rng: random.Random) -> list[Agent]:
    departments = [f"d{i}" for i in range(max(5, count // 200))]
    agents = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.1:
            served: frozenset[str] = frozenset()
        else:
            served = frozenset(rng.sample(departments, 1 if roll < 0.7 else 2))
        agents.append(Agent(id=f"agent-{i:06d}", name=f"Agent {i}", department_ids=served, is_admin=roll > 0.99))
    return agents


def build(agents_count: int, conversations: int, *, cap: int | None, seed: int = 7) -> tuple[RoutingEngine, list[Any]]:
    """An engine with most agents online and ``conversations`` active conversations."""
    rng = random.Random(seed)
    agents = make_agents(agents_count, rng)
    engine = RoutingEngine(Routing(max_concurrent=cap), agents)
    for agent in agents:
        if rng.random() < 0.8:
            engine.set_online(agent.id, True, now=NOW)
    departments = sorted({d for a in agents for d in a.department_ids})
    for i in range(conversations):
        department = None if i % 10 == 0 else departments[i % len(departments)]
        engine.add_conversation(f"conv-{i}", department_id=department, now=NOW + timedelta(seconds=i))
    return engine, [rng, departments, conversations]


def churn(engine: RoutingEngine, state: list[Any], operations: int, rounds: int = 5) -> float:
    """Archive a random active conversation and route a new one, ``operations`` times; seconds per decision.

    The operations run in ``rounds`` equal rounds and the fastest round counts, so that other work on the
    machine disturbs the figure less.
    """
    rng, departments, next_id = state
    active = [f"conv-{i}" for i in range(next_id)]
    per_round = max(1, operations // rounds)
    timings = []
    step = 0
    gc.collect()
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            index = rng.randrange(len(active))
            at = NOW + timedelta(hours=1, seconds=step)
            engine.release(active[index], now=at)
            department = None if step % 10 == 0 else departments[step % len(departments)]
            conversation_id = f"conv-{next_id + step}"
            engine.add_conversation(conversation_id, department_id=department, now=at)
            active[index] = conversation_id
            step += 1
        timings.append((time.perf_counter() - started) / (2 * per_round))
    state[2] = next_id + step
    return min(timings)


def toggles(engine: RoutingEngine, agents: int, operations: int, rounds: int = 5, seed: int = 11) -> float:
    """Flip random agents online/offline; seconds per call (fastest of ``rounds`` rounds)."""
    rng = random.Random(seed)
    per_round = max(1, operations // rounds)
    timings = []
    for round_ in range(rounds):
        started = time.perf_counter()
        for step in range(per_round):
            agent_id = f"agent-{rng.randrange(agents):06d}"
            at = NOW + timedelta(hours=2, seconds=round_ * per_round + step)
            engine.set_online(agent_id, not engine.is_online(agent_id), now=at)
        timings.append((time.perf_counter() - started) / per_round)
    return min(timings)


def queue_figures(waiting: int) -> dict[str, float]:
    """A queue of ``waiting`` conversations: enqueue cost, and the cost of a release that moves the queue."""
    engine = RoutingEngine(Routing(max_concurrent=1), [Agent(id="solo", name="Solo")])
    engine.set_online("solo", True, now=NOW)
    engine.add_conversation("busy", department_id=None, now=NOW)
    started = time.perf_counter()
    for i in range(waiting):
        engine.add_conversation(f"w{i}", department_id=None, now=NOW)
    enqueue = (time.perf_counter() - started) / waiting
    releases = 20
    started = time.perf_counter()
    current = "busy"
    for _ in range(releases):
        events = engine.release(current, now=NOW)
        current = events[0].conversation_id
    moved = (time.perf_counter() - started) / releases
    return {"queue_length": waiting, "enqueue_us": enqueue * 1e6, "release_moving_queue_ms": moved * 1e3}


def run(quick: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    main_agents, main_conversations = 10_000, 100_000
    cap = 20  # room for every conversation: the figures are for decisions, not queue reports

    # Peak memory while building the main load (a tenth of it when quick); tracing slows Python down, so
    # nothing traced is timed.
    traced_agents, traced_conversations = (1_000, 10_000) if quick else (main_agents, main_conversations)
    gc.collect()
    tracemalloc.start()
    engine, state = build(traced_agents, traced_conversations, cap=cap)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del engine, state
    gc.collect()
    engine, state = build(main_agents, main_conversations, cap=cap)
    per_decision = churn(engine, state, 10_000 if quick else 50_000)
    per_toggle = toggles(engine, main_agents, 2_000 if quick else 10_000)
    results["main"] = {
        "agents": main_agents,
        "active_conversations": main_conversations,
        "decision_us": per_decision * 1e6,
        "decisions_per_second": 1 / per_decision,
        "online_toggle_us": per_toggle * 1e6,
        "peak_memory_mb": peak / 2**20,
        "peak_memory_for": {"agents": traced_agents, "active_conversations": traced_conversations},
    }
    del engine, state
    gc.collect()

    sizes = [100, 1_000, 10_000] if quick else [100, 1_000, 10_000, 100_000]
    scaling = []
    for size in sizes:
        if size == main_agents:
            cost = per_decision
        else:
            engine, state = build(size, 10 * size, cap=cap)
            cost = churn(engine, state, 10_000 if quick else 30_000)
            del engine, state
            gc.collect()
        scaling.append({"agents": size, "conversations": 10 * size, "decision_us": cost * 1e6})
    results["scaling"] = scaling
    results["queue"] = queue_figures(1_000 if quick else 10_000)
    return results


def print_table(results: dict[str, Any]) -> None:
    main = results["main"]
    print(
        f"routing: {main['agents']:,} agents, {main['active_conversations']:,} active conversations\n"
        f"  decision (churn)    {main['decision_us']:8.1f} us  ({main['decisions_per_second']:,.0f} decisions/s)\n"
        f"  online toggle       {main['online_toggle_us']:8.1f} us\n"
        f"  peak memory         {main['peak_memory_mb']:8.1f} MiB  "
        f"({main['peak_memory_for']['agents']:,} agents, "
        f"{main['peak_memory_for']['active_conversations']:,} conversations)"
    )
    print("\n  agents    conversations  us/decision")
    for row in results["scaling"]:
        print(f"  {row['agents']:>7,}  {row['conversations']:>13,}  {row['decision_us']:>11.1f}")
    queue = results["queue"]
    print(
        f"\n  queue of {queue['queue_length']:,}: enqueue {queue['enqueue_us']:.1f} us; a release that moves it "
        f"{queue['release_moving_queue_ms']:.2f} ms (one queue_moved event per waiting conversation)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run, a few seconds")
    args = parser.parse_args()
    print_table(run(quick=args.quick))


if __name__ == "__main__":
    main()
