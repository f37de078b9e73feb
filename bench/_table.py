"""Shared pieces of the benchmarks: latency statistics, machine description, and the printed table."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["Row", "machine", "percentile", "ratio", "render", "run_alone", "summarise_latencies"]

Row = dict[str, Any]


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile of ``samples`` by the nearest-rank method; NaN when empty."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise_latencies(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max of per-request latencies, in milliseconds."""
    return {
        "p50_ms": percentile(seconds, 0.50) * 1e3,
        "p99_ms": percentile(seconds, 0.99) * 1e3,
        "max_ms": (max(seconds) * 1e3) if seconds else math.nan,
    }


def ratio(
    name: str,
    value: float,
    baseline_value: float,
    *,
    baseline: str,
    target: float | None,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """A named ratio ``value / baseline_value`` with its baseline and, when given, whether the target is met."""
    figure = value / baseline_value if baseline_value else math.nan
    met: bool | None = None
    if target is not None and math.isfinite(figure):
        met = figure >= target if higher_is_better else figure <= target
    return {
        "name": name,
        "ratio": figure,
        "baseline": baseline,
        "target": target,
        "higher_is_better": higher_is_better,
        "met": met,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": _cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def _grid(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i > 0 and _numeric(c) else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    return lines


def _numeric(text: str) -> bool:
    return bool(text) and text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def render(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """The printed report: per section its rows (a grid over the union of their keys), then the ratios."""
    out: list[str] = []
    for title, section in sections.items():
        out.append(f"== {title} ==")
        if section.get("skipped"):
            out.append(f"skipped: {section['skipped']}")
        rows: list[Row] = list(section.get("rows", []))
        if rows:
            headers: list[str] = []
            for row in rows:
                headers.extend(k for k in row if k not in headers)
            out.extend(_grid(headers, ([row.get(h) for h in headers] for row in rows)))
        ratios = list(section.get("ratios", []))
        if ratios:
            out.append("")
            out.extend(
                _grid(
                    ["ratio", "value", "baseline", "target", "met"],
                    (
                        [
                            r["name"],
                            r["ratio"],
                            r["baseline"],
                            None
                            if r["target"] is None
                            else ((">= " if r["higher_is_better"] else "<= ") + _cell(float(r["target"]))),
                            r["met"],
                        ]
                        for r in ratios
                    ),
                )
            )
        for note in section.get("notes", []):
            out.append(f"note: {note}")
        out.append("")
    return "\n".join(out)


def run_alone(name: str, run: Callable[[bool], dict[str, Any]], description: str | None) -> None:
    """The command line of one benchmark module: ``python -m bench.<module> [--quick]``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(args.quick)
    print(render({name: result}))
    print(json.dumps(result, indent=2))
