"""Run every benchmark: ``python -m bench [--quick] [--only inbound,outbound,...] [--profile DIR]``.

Prints one table per benchmark and writes the figures, ratios and machine description to ``bench/results.json``
(or ``--output``). No figure is asserted: the run fails only when a benchmark loses or misroutes work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import ceiling, inbound, outbound, routing_bench, stores
from ._table import machine, render

ITEMS = ("inbound", "outbound", "ceiling", "routing", "stores")
DEFAULT_OUTPUT = Path(__file__).with_name("results.json")


def _profiler(directory: Path | None) -> Callable[[str], Any] | None:
    """A factory of context managers that profile a block with pyinstrument into ``directory/<name>.txt``."""
    if directory is None:
        return None
    from pyinstrument import Profiler

    directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def profile(name: str) -> Iterator[None]:
        profiler = Profiler(async_mode="enabled", interval=0.0005)
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            text = profiler.output_text(unicode=False, color=False)
            (directory / f"{name}.txt").write_text(text, encoding="utf-8")
            (directory / f"{name}.html").write_text(profiler.output_html(), encoding="utf-8")

    return profile


def _routing(quick: bool) -> dict[str, Any]:
    figures = routing_bench.run(quick)
    main = figures["main"]
    row = {
        "agents": main["agents"],
        "active_conversations": main["active_conversations"],
        "decisions_per_s": main["decisions_per_second"],
        "decision_us": main["decision_us"],
        "online_toggle_us": main["online_toggle_us"],
        "peak_memory_mb": main["peak_memory_mb"],
    }
    return {"rows": [row], "figures": figures, "notes": ["from bench/routing_bench.py; details under 'figures'"]}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 2 minutes in all)")
    parser.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated subset of {', '.join(ITEMS)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON results")
    parser.add_argument("--profile", type=Path, default=None, help="write pyinstrument profiles of inbound/outbound")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ITEMS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ITEMS)}")
    profile = _profiler(args.profile)

    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "inbound": lambda: inbound.run(args.quick, profile=profile),
        "outbound": lambda: outbound.run(args.quick, profile=profile),
        "ceiling": lambda: ceiling.run(args.quick),
        "routing": lambda: _routing(args.quick),
        "stores": lambda: stores.run(args.quick),
    }
    results: dict[str, Any] = {
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**machine(), "loadavg_at_start": _loadavg()},
        "benchmarks": {},
    }
    started = time.perf_counter()
    for name in ITEMS:
        if name not in chosen:
            continue
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        section = runners[name]()
        section["seconds"] = time.perf_counter() - t0
        results["benchmarks"][name] = section
        print(render({name: section}), flush=True)
    results["seconds"] = time.perf_counter() - started
    results["machine"]["loadavg_at_end"] = _loadavg()
    args.output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    m = results["machine"]
    print(
        f"machine: {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, {m['platform']}; "
        f"load average {m['loadavg_at_start']} -> {m['loadavg_at_end']}"
    )
    print(f"total {results['seconds']:.1f} s; results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
