"""PostgreSQL for the store tests: a throwaway database per test module on the server named by
NORBIT_TEST_POSTGRES_DSN (for instance ``postgresql://postgres@127.0.0.1:54329/postgres``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

ENV = "NORBIT_TEST_POSTGRES_DSN"
TABLES = (
    "norbit_documents",
    "norbit_transcript",
    "norbit_transcript_heads",
    "norbit_inbox",
    "norbit_jobs",
    "norbit_rate_cells",
)


@pytest.fixture(scope="session")
def reset_postgres() -> Callable[[str], None]:
    return _reset_postgres


def _reset_postgres(dsn: str) -> None:
    """Empty every store table (those that exist) so the next store starts from nothing."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        present = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(%s)",
                (list(TABLES),),
            )
        ]
        if present:
            conn.execute(f"TRUNCATE {', '.join(present)} RESTART IDENTITY")
