"""Real stores for hub tests that share one store between several hubs: an SQLite file, and PostgreSQL on the
server named by NORBIT_TEST_POSTGRES_DSN (a throwaway database per test module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from norbit_connectors.store import PostgresStore, SQLiteStore, Store

ENV = "NORBIT_TEST_POSTGRES_DSN"


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Makes stores that all open the same, initially empty, data."""
    if request.param == "sqlite":
        path = tmp_path / "hub.sqlite3"
        return lambda: SQLiteStore(path)
    dsn: str = request.getfixturevalue("postgres_dsn")
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return lambda: PostgresStore(dsn, min_size=0, max_size=4)
