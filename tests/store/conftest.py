"""PostgreSQL for the store tests: a throwaway database per test module on the server named by
NORBIT_TEST_POSTGRES_DSN (for instance ``postgresql://postgres@127.0.0.1:54329/postgres``)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

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


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    server = os.environ.get(ENV)
    if not server:
        pytest.skip(f"{ENV} is not set: no PostgreSQL server to test against")
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"norbit_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
