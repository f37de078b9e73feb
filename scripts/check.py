"""Run every check: ruff (lint and format), mypy --strict, then the test suite. Exits non-zero on any failure."""

from __future__ import annotations

import subprocess
import sys

STEPS = [
    [sys.executable, "-m", "ruff", "check", "src", "tests", "examples", "bench", "scripts"],
    [sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "examples", "bench", "scripts"],
    [sys.executable, "-m", "mypy", "--strict", "src"],
    [sys.executable, "-m", "pytest", *sys.argv[1:]],
]


def main() -> int:
    for step in STEPS:
        print("+", " ".join(step[2:]), flush=True)
        code = subprocess.call(step)
        if code != 0:
            print(f"FAILED: {' '.join(step[2:])} (exit {code})", flush=True)
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
