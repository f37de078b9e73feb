"""nox sessions: ``nox -s tests``, ``nox -s bench`` (add ``-- --quick``), ``nox -s docs``."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests"]
ROOT = Path(__file__).parent


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, type-check and run the test suite (scripts/check.py); extra arguments go to pytest."""
    session.install("-e", ".[dev]")
    session.run("python", "scripts/check.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and write bench/results.json; ``nox -s bench -- --quick`` for the short run."""
    session.install("-e", ".[dev]", "slack_bolt", "pyinstrument")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation with warnings as errors."""
    if not (ROOT / "docs" / "conf.py").exists():
        session.error("docs/conf.py does not exist yet: there is no Sphinx project to build")
    session.install("-e", ".[dev]", "sphinx")
    session.run("python", "-m", "sphinx", "-W", "-b", "html", "docs", "docs/_build/html")
