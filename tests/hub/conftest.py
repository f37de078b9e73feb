"""Real stores for hub tests that share one store between several hubs: an SQLite file, and PostgreSQL on the
server named by NORBIT_TEST_POSTGRES_DSN (a throwaway database per test module)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from norbit_connectors.store import PostgresStore, SQLiteStore, Store

ENV = "NORBIT_TEST_POSTGRES_DSN"


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
