"""The emulated Slack workspace of the in-process reliability tests, and a fresh PostgreSQL database for the
multi-process ones (NORBIT_TEST_POSTGRES_DSN names the server; CI sets it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.testing._slack_emulator import SlackEmulator

POSTGRES_ENV = "NORBIT_TEST_POSTGRES_DSN"


class Slack:
    def __init__(self, emu: SlackEmulator) -> None:
        self.emu = emu
        self.main = emu.add_channel("support", members=[emu.bot_user_id])
        self.carl = emu.add_user("carl", email="carl@support.example", real_name="Carl Agent")

    def connector(self) -> SlackConnector:
        config = SlackConfig(
            bot_token=self.emu.bot_token,
            signing_secret=self.emu.signing_secret,
            main_channel=self.main,
            base_url=self.emu.base_url,
        )
        return SlackConnector(config, limiter=SlackLimiter(enabled=False))


@pytest.fixture
def slack() -> Iterator[Slack]:
    with SlackEmulator(rate_limits="off") as emu:
        yield Slack(emu)


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server for the multi-process tests")
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"norbit_rel_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
