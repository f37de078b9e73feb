"""A fresh PostgreSQL database on the server the tests are given, for the fixtures that need one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ENV = "NORBIT_TEST_POSTGRES_DSN"


@contextmanager
def fresh_database() -> Iterator[str]:
    """The DSN of a new, empty database on the server NORBIT_TEST_POSTGRES_DSN names (CI sets it; the test is
    skipped without it), dropped afterwards."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against")
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
